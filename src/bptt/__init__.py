"""bptt: recurrent neural networks (vanilla RNN and LSTM) with hand-written backpropagation
through time in NumPy, checked against numerical gradients and PyTorch autograd."""

__version__ = "0.1.0"
