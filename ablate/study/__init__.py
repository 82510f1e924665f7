"""The Optuna study of a job, the one record of truth of a sweep. Only re-exports: storage and
study (`storage`), the one-driver lock (`lock`), trial <-> mixture (`codec`), enqueue and
reconcile (`queue`), what trials are trained with (`settings`), private-Optuna fast paths
(`optuna_fast`)."""

from ablate.study.codec import (
    DESIGN_ATTRS,
    RESULT_DEFAULTS,
    mixture_from_attrs,
    result_from_attrs,
    trial_attrs,
)
from ablate.study.lock import (
    LOCK_STALE_SECONDS,
    driver_holder,
    driver_lock,
    lock_file,
)
from ablate.study.queue import drop_outside, enqueue_design, reconcile
from ablate.study.settings import (
    ALLOW_FLAG,
    STUDY_SETTINGS_ID,
    TRIAL_SETTINGS_ID,
    SettingsLevel,
    check_settings,
    job_settings,
    recorded_levels,
    settings_id,
)
from ablate.study.storage import (
    STUDY_UID,
    open_storage,
    open_study,
    postgres_driver,
    sqlite_fast_commits,
    storage_lost,
    study_uid,
)

__all__ = [
    "ALLOW_FLAG",
    "DESIGN_ATTRS",
    "LOCK_STALE_SECONDS",
    "RESULT_DEFAULTS",
    "STUDY_SETTINGS_ID",
    "STUDY_UID",
    "TRIAL_SETTINGS_ID",
    "SettingsLevel",
    "check_settings",
    "driver_holder",
    "driver_lock",
    "drop_outside",
    "enqueue_design",
    "job_settings",
    "lock_file",
    "mixture_from_attrs",
    "open_storage",
    "open_study",
    "postgres_driver",
    "reconcile",
    "recorded_levels",
    "result_from_attrs",
    "settings_id",
    "sqlite_fast_commits",
    "storage_lost",
    "study_uid",
    "trial_attrs",
]
