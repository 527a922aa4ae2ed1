"""fastlight.engine: flat gradient buffers, fused optimizers, the device-side loss scaler."""
