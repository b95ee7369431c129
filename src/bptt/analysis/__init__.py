"""Looking inside trained networks: gradient flow through time (``gradflow``), activations and
gate saturation (``insight``), plots (``plots``) and the self-contained HTML report (``report``)."""
