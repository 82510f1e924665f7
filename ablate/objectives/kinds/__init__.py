"""The objective kinds, one module each; every module here registers itself in `OBJECTIVES`
(`ablate.objectives.base`) when the registry is first read."""
