"""dcm_spark.dicom.deidentify.Policy: excluded elements at every depth, the forms an entry
takes, keys, and what a policy refuses."""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from dcm_spark.dicom.deidentify import Policy, Profile, apply
from dcm_spark.dicom.header import HeaderOptions
from tests.helpers import (
    KEY,
    all_text,
    find_key,
    pydicom_path,
    read_row,
    synthetic_file,
    type_names,
)

BASIC = Policy(profile="basic", hash_key=KEY)


@pytest.mark.parametrize("profile", ["none", "basic"])
def test_exclude_removes_columns_at_every_depth(profile: str) -> None:
    policy = Policy(exclude=frozenset({"PatientName", "(0010,0020)", "00100030"}), profile=profile)
    assert policy.exclude == {"PatientName", "PatientID", "PatientBirthDate"}
    for source in (pydicom_path("CT_small.dcm"), synthetic_file()):
        original = read_row(source)
        assert find_key(original.values, "PatientID") and find_key(original.values, "PatientName")
        result = apply(original, policy)
        for name in policy.exclude:
            assert not find_key(result.values, name)
            assert name not in type_names(result.types)
        tags = [e["Tag"] for e in find_key(result.values, "OtherElements") for e in e or ()]
        assert "Tag_00100030" not in tags  # the unparsable birth date, kept as text
        text = all_text(result.values)
        for leak in ("Doe", "Roe", "Poe", "Private^Person", "PID-12345", "PID-67890"):
            assert leak not in text


def test_exclude_reaches_into_subtrees_kept_as_json() -> None:
    original = read_row(synthetic_file(), HeaderOptions(max_depth=1))
    assert "Poe^Edgar" in all_text(original.values)
    result = apply(original, Policy(exclude=frozenset({"PatientName"})))
    assert "Poe" not in all_text(result.values) and "Private^Person" not in all_text(result.values)
    assert "Tag_00091001" in [e["Tag"] for e in result.values["OtherElements"]]  # profile none


def test_exclude_forms_are_normalised() -> None:
    policy = Policy(exclude=frozenset({"00100010", "Tag_00091001", "(6002,4000)", "_BulkData"}))
    assert policy.exclude == {"PatientName", "Tag_00091001", "OverlayComments", "_BulkData"}
    assert Policy(exclude=frozenset({"(0010, 0010)"})) == Policy(exclude=frozenset({"PatientName"}))


@pytest.mark.parametrize(
    "entry", ["NotAKeyword", "patientname", "(0010,00ZZ)", "0010002", "001000200", "Tag_0010"]
)
def test_unknown_exclude_entries_raise(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        Policy(exclude=frozenset({entry}))


def test_bad_policies_raise() -> None:
    with pytest.raises(ValueError):
        Policy(profile="strict")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="basic"):
        Policy(hash_key=KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        Policy(profile=Profile.BASIC, hash_key=b"short")
    with pytest.raises(ValueError, match="bytes"):
        Policy(profile=Profile.BASIC, hash_key="a text key, not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Policy(exclude="PatientName")  # type: ignore[arg-type]


def test_random_key_per_policy_and_no_key_in_repr() -> None:
    first, second = Policy(profile="basic"), Policy(profile="basic")
    assert first.hash_key is not None and len(first.hash_key) == 32
    assert first.hash_key != second.hash_key
    assert first.hash_uid("1.2.3") != second.hash_uid("1.2.3")
    assert KEY.decode() not in repr(BASIC) and "hash_key" not in repr(BASIC)


def test_policy_pickles_for_the_workers() -> None:
    policy = Policy(exclude=frozenset({"(0010,0020)"}), profile="basic")
    copied = pickle.loads(pickle.dumps(policy))
    assert copied == policy and copied.hash_key == policy.hash_key
    header = read_row(pydicom_path("CT_small.dcm"))
    assert apply(header, copied).values == apply(header, policy).values


def test_input_header_is_not_changed() -> None:
    header = read_row(pydicom_path("rtplan.dcm"))
    before = copy.deepcopy(header)
    apply(header, BASIC)
    apply(header, Policy(exclude=frozenset({"PatientName"})))
    assert header.values == before.values and header.types == before.types


def test_profile_none_without_exclude_changes_nothing() -> None:
    header = read_row(pydicom_path("CT_small.dcm"))
    result = apply(header, Policy())
    assert result.values == header.values and result.types == header.types
    assert result.values is not header.values
