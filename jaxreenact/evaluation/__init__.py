"""Evaluation of reenactment (the paper's Table 1): metric functions (`metrics`) and the protocol around them."""
