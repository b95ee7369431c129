"""Exchange weights with other frameworks.

``bptt.interop.torch`` maps bptt's recurrent layers to and from ``torch.nn.RNN`` /
``torch.nn.LSTM`` parameters and state dicts. PyTorch is imported only inside the functions that
need it, so importing bptt (or this package) never requires PyTorch.
"""
