"""The range of every number a consumed event or catalog entry carries (docs/reliability.md#ranges).

Each range is one an LMS finds generous, and small enough that the number, and every value
derived from it, fits its PostgreSQL column (``integer`` up to 2^31-1, ``bigint`` up to
2^63-1) and is read exactly by any JSON reader (integers up to 2^53-1, finite floats). A
number out of range is refused at the boundary, with the field's name: the worker
dead-letters the event (``invalid``), the admin API answers 400. Past the boundary nothing
checks again, so a value let through here would reach the sink and could stop it.

Floats are finite: JSON has no infinity, and a number too large for a double (``1e400``)
parses as one, which would be stored as null.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Ten years of seconds (365.25 days each): more than anyone spends on one lesson or quiz.
# A quiz attempt's time is at most the sum of its answers' times; it would take billions of
# answers for that sum to leave a bigint.
MAX_SECONDS = 315_576_000
# What an item, an achievement or a grade may be worth. A course's points are the sum of its
# items' (at most MAX_ITEMS_PER_MODULE * 3 * MAX_MODULES of them, 3e12 points), a learner's
# the sum over their courses and achievements: a bigint holds millions of such courses.
MAX_POINTS = 1_000_000
# A position's unit is the producer's (video seconds, milliseconds, a page, a character), so
# the only bound is what every JSON reader holds exactly; a bigint holds it too.
MAX_POSITION = 2**53 - 1
# The parts of a course structure. A course's counts (lessons, quizzes, ...) go to integer
# columns, as do a learner's sums of them over their courses; in practice the 1 MB message
# limit (progress.decode.MAX_MESSAGE_BYTES) keeps a structure far below these.
MAX_MODULES = 1_000
MAX_ITEMS_PER_MODULE = 1_000

Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]
Position = Annotated[int, Field(ge=0, le=MAX_POSITION)]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]
# A grade, and the most a grade can be (the latter is a divisor, so never 0).
Score = Annotated[float, Field(ge=0, le=MAX_POINTS, allow_inf_nan=False)]
MaxScore = Annotated[float, Field(gt=0, le=MAX_POINTS, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
# A share of credit or of a max score, 0 to 1.
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A competency level, 0 to 100 (a grant of one is at least 1).
Level = Annotated[int, Field(ge=0, le=100)]
GrantLevel = Annotated[int, Field(ge=1, le=100)]
QuestionCount = Annotated[int, Field(ge=0, le=10_000)]
# How many lessons, courses or days an achievement's criterion asks for.
CriterionCount = Annotated[int, Field(ge=1, le=100_000)]
