"""The fixed calibration/evaluation split of the State of the Union corpus."""
import pytest

from sparsescope import SparsescopeError
from sparsescope.sources.corpus import EVAL_FIRST_YEAR, sotu_documents


def test_split_is_disjoint_and_complete():
    calibration, evaluation = sotu_documents("calibration"), sotu_documents("evaluation")
    assert len(calibration) + len(evaluation) == 233
    assert max(d.year for d in calibration) < EVAL_FIRST_YEAR <= min(d.year for d in evaluation)
    assert not {d.text for d in calibration} & {d.text for d in evaluation}
    assert sum(len(d.text) for d in evaluation) > 500_000


def test_unknown_split_is_one_line():
    with pytest.raises(SparsescopeError, match="unknown corpus split"):
        sotu_documents("train")
