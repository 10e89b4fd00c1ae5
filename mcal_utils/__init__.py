"""mcal_utils: the helper package behind the mcal notebooks.

Pipeline, one concept per module:
data -> models -> training -> mc (MC predictions) -> acquisition (scores and
selection) -> loop (experiments) -> metrics / stats -> plots -> report.
"""

__version__ = "0.1.0"
