"""CSS-style synthetic scenes (a 3x3 grid of coloured solids) and their modifications."""
