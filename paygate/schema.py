"""Every table of every layer, imported once so ``Base.metadata`` is complete (migrations, test checks).

The tables live with the code that owns them: API clients, sessions, attempts and payments in
:mod:`payments.models`; the vault's records in :mod:`tokenizer.models`; events, deliveries and attempts in
:mod:`callbacks.models`.
"""

from callbacks import models as callbacks_models  # noqa: F401
from kernel.db import Base
from payments import models as payments_models  # noqa: F401
from tokenizer import models as tokenizer_models  # noqa: F401

metadata = Base.metadata
"""The complete :class:`sqlalchemy.MetaData` of paygate's database."""
