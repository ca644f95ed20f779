"""The subcommands of ``infertune``, one module per area; ``tuner.cli`` wires them to the parser."""
