"""fastlight.engine: fused optimizers, flat buffers, device-side loss scaling (kernels via fastlight.ops)."""
