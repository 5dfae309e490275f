"""Where torch has a fused Adam(W) kernel: used by the training loop's optimiser and by the
algorithms that run Adam themselves (`relu_network_trained`), so that neither imports the
other's package."""

from __future__ import annotations


def fused_adam_devices() -> list[str]:
    """The device types with a fused Adam(W) kernel (torch >= 2.4 has one on the CPU)."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:  # a private helper: if it moves, fuse where torch always could
        return ["cuda"]
    return _get_fused_kernels_supported_devices()
