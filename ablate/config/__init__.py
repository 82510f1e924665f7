"""YAML files -> frozen dataclasses (`loader`), paths and database URLs (`paths`), the job file
(`job`) and its reading and checks (`read_job`). Only re-exports."""

from ablate.config.job import (
    BenchRef,
    DesignSpec,
    JobSpec,
    LoraSpec,
    ModelSpec,
    NamedModel,
    ObjectiveSpec,
    ResourceSpec,
    TrainSpec,
)
from ablate.config.loader import (
    apply_override,
    blame_overrides,
    build,
    check_colon_keys,
    read_yaml,
    to_dict,
)
from ablate.config.models import model_job, model_names, named_model
from ablate.config.paths import (
    RAY_IGNORE_FILE,
    keep_out_of_ray_uploads,
    redact,
    resolve_db_url,
    resolve_path,
    safe_name,
    sqlite_path,
    uploaded_hint,
    writable_folder,
)
from ablate.config.read_job import check_job_shape, read_job

__all__ = [
    "RAY_IGNORE_FILE",
    "BenchRef",
    "DesignSpec",
    "JobSpec",
    "LoraSpec",
    "ModelSpec",
    "NamedModel",
    "ObjectiveSpec",
    "ResourceSpec",
    "TrainSpec",
    "apply_override",
    "blame_overrides",
    "build",
    "check_colon_keys",
    "check_job_shape",
    "keep_out_of_ray_uploads",
    "model_job",
    "model_names",
    "named_model",
    "read_job",
    "read_yaml",
    "redact",
    "resolve_db_url",
    "resolve_path",
    "safe_name",
    "sqlite_path",
    "to_dict",
    "uploaded_hint",
    "writable_folder",
]
