"""jaxreenact: JAX/Flax reimplementation of "Finding Directions in GAN's Latent Space for Neural Face
Reenactment" (Bounareli, Argyriou, Tzimiropoulos, BMVC 2022)."""

__version__ = "0.1.0"
