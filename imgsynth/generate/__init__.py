"""Generative models: DCGAN/VAE training and sampling, diffusion."""
