"""Lightning's `overrides` import path: the names of fastlight's own wrappers where users and tests reach for them."""
