"""Fixed design kinds, one file each; `ablate.design.registry.DESIGNS` finds them."""
