"""The subcommands of ``infertune``, one module each: its arguments (``add_parser``) and its handler."""
