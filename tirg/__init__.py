"""TIRG (Vo et al., CVPR 2019) as a pure library: torch only, nothing of the web server."""
