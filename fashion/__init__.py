"""The Fashion-MNIST generative-model suite: data, networks, the training loop, artifacts and metrics."""
