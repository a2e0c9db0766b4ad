from llmops.cli.main import run

run()
