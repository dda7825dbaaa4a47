"""Every table of every domain on one metadata (for migrations and drift checks)."""

from __future__ import annotations

from vexam.accounts import models as accounts_models
from vexam.core import audit
from vexam.core.models import Base
from vexam.exams import models as exams_models
from vexam.identity import models as identity_models
from vexam.review import models as review_models
from vexam.schools import models as schools_models
from vexam.support import models as support_models

metadata = Base.metadata
MODEL_MODULES = (
    audit,
    accounts_models,
    schools_models,
    identity_models,
    exams_models,
    review_models,
    support_models,
)
