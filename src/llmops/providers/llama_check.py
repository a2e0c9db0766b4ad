"""Can this machine run the installed llama.cpp build? `python -m llmops.providers.llama_check`.

Loads the packaged chat model and decodes a prompt of several tokens: exit status 0 when that works.
A llama.cpp compiled with ``-march=native`` on a CPU that advertises AMX uses AMX tiles for multi-token
batches, and a virtual machine that does not grant the tile state kills the process on the first such
batch (a general protection fault, seen on this project's CI machines). `make` runs this check after
installing and rebuilds llama.cpp without CPU-specific extensions when it fails; run it in a subprocess,
since the failure is a crash, not an exception.
"""

from __future__ import annotations

import sys


def main() -> int:
    from llmops.providers.local import default_gguf

    path = default_gguf()
    if path is None:
        print(
            "llama_check: the packaged model is not installed (pip install 'llmops[local]')", file=sys.stderr
        )
        return 2
    from llama_cpp import Llama

    llama = Llama(model_path=str(path), n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)
    tokens = llama.tokenize(b"The quick brown fox jumps over the lazy dog and keeps on running.")
    llama.eval(tokens)  # one batch of several tokens: where a build the CPU cannot run crashes
    print(f"llama_check: ok ({len(tokens)} tokens decoded in one batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
