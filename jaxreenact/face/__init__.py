"""Pure functions of face geometry: rotations, the pose vector p and its shift units, the DECA crop."""
