"""fastlight.engine: fused optimizers, flat gradient buffers, the device-side loss scaler (kernels via fastlight.ops)."""
