"""One module per ``bptt`` subcommand (see ``bptt.cli``)."""
