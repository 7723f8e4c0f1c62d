"""Every intake field at and past its limits, checked by the one validator (no HTTP here)."""

import pytest
from werkzeug.datastructures import MultiDict

from clinic.intake import schema
from clinic.intake.fields import FIELDS, SECTIONS, SYMPTOMS
from tests.limits import ALL_CASES, ALL_SHOWN, TODAY, with_value


def test_all_shown_example_is_valid():
    clean, errors = schema.validate_all(ALL_SHOWN, TODAY)
    assert errors == {}
    # every conditional field really is shown (and so kept) in this example
    assert set(ALL_SHOWN) <= set(clean) | {"pregnancy_possible"}


@pytest.mark.parametrize(
    ("field_id", "value", "ok"),
    ALL_CASES,
    ids=[f"{c[0]}={str(c[1])[:20]!s}-{c[2]}" for c in ALL_CASES],
)
def test_field_limits(field_id, value, ok):
    values, type_errors = schema.from_json(with_value(field_id, value))
    _, errors = schema.validate_all(values, TODAY)
    errors = {**errors, **type_errors}
    if ok:
        assert errors == {}
    else:
        assert list(errors) == [field_id]
        assert all(isinstance(m, str) and m for m in errors[field_id])


def test_every_field_has_cases():
    covered = {c[0] for c in ALL_CASES}
    assert covered == set(FIELDS)


def test_hidden_fields_are_dropped():
    values = with_value("tx_esi", False)
    clean, errors = schema.validate_all(values, TODAY)
    assert errors == {}
    assert "tx_esi_count" not in clean and "tx_esi_last_date" not in clean


def test_conditional_requirements():
    values = dict(ALL_SHOWN, preferred_contact="email")
    values.pop("email")
    _, errors = schema.validate_all(values, TODAY)
    assert "email" in errors
    values = dict(ALL_SHOWN, preferred_contact="phone_call")
    values.pop("phone_mobile")
    _, errors = schema.validate_all(values, TODAY)
    assert "phone_mobile" in errors
    _, errors = schema.validate_all(dict(ALL_SHOWN, consent_email=False), TODAY)
    assert errors["consent_email"][0].startswith("We need your OK")


def test_phone_and_codes_are_canonical():
    values, _ = schema.from_json(with_value("phone_mobile", "(555) 201-0123"))
    clean, _ = schema.validate_all(values, TODAY)
    assert clean["phone_mobile"] == "+15552010123"
    values, _ = schema.from_json(
        dict(ALL_SHOWN, symptom_locations=["thigh", "low_back"], medicare_mbi="1eg4-te5-mk73")
    )
    clean, _ = schema.validate_all(values, TODAY)
    assert clean["symptom_locations"] == ["low_back", "thigh"]
    assert clean["medicare_mbi"] == "1EG4TE5MK73"


def test_unknown_fields_and_non_objects():
    assert schema.from_json({"favourite_colour": "blue"})[1] == {
        "favourite_colour": ["Unknown field."]
    }
    assert "_body" in schema.from_json(["not", "an", "object"])[1]


def test_signature_mismatch_warns_but_does_not_block():
    values = dict(ALL_SHOWN, e_signature="Someone Else")
    _, errors = schema.validate_all(values, TODAY)
    assert errors == {}
    assert schema.signature_warning(values)
    assert schema.signature_warning(ALL_SHOWN) is None


def test_sections_cover_a_to_h_with_red_flags_first():
    assert [s.id for s in SECTIONS] == ["C", "A", "B", "D", "E", "F", "G", "H"]


def test_pregnancy_question_is_asked_unless_male():
    values = {k: v for k, v in ALL_SHOWN.items() if k not in {"sex_at_birth", "pregnancy_possible"}}
    _, errors = schema.validate_all(values, TODAY)
    assert "pregnancy_possible" in errors  # skipped sex question: still asked
    _, errors = schema.validate_all(dict(values, sex_at_birth="male"), TODAY)
    assert "pregnancy_possible" not in errors


# str.isdigit() and a Unicode \d accept "²", "٢" and "５"; int() reads some and chokes on others
@pytest.mark.parametrize(
    ("field_id", "value"),
    [
        ("referring_provider_npi", "²" * 10),
        ("referring_provider_npi", "١٢٤٥٣١٩٥٩٩"),
        ("zip", "٠٢١٣٩"),
        ("phone_mobile", "５５５２０１０１２３"),
        ("phone_mobile", "+４４２０７１８３８７５０"),
        ("medicare_mbi", "1EG٤TE5MK73"),
        ("imaging_date", "２０２５-05"),
        ("date_of_birth", "０３/２７/１９５１"),
    ],
)
def test_digits_from_other_scripts_get_the_fields_message(field_id, value):
    values, type_errors = schema.from_json(with_value(field_id, value))
    _, errors = schema.validate_all(values, TODAY)
    errors = {**errors, **type_errors}
    assert list(errors) == [field_id]


def test_a_typed_number_must_use_ascii_digits():
    _, errors = schema.from_form(SYMPTOMS, MultiDict({"max_walking_minutes": "１５"}))
    assert errors["max_walking_minutes"] == ["Enter a whole number, like 15."]


def test_a_sudden_or_injury_onset_asks_the_trauma_question_again():
    cases = [
        ("after_injury", "no", True),
        ("sudden_no_injury", "no", True),
        ("gradual", "no", False),
        ("after_injury", "new", False),  # already flagged on the first step
    ]
    for onset, trauma, asked in cases:
        values = dict(with_value("rf_trauma_recheck", None), symptom_onset=onset, rf_trauma=trauma)
        _, errors = schema.validate_all(values, TODAY)
        assert ("rf_trauma_recheck" in errors) is asked, onset
        clean, errors = schema.validate_all(dict(values, rf_trauma_recheck="no"), TODAY)
        assert errors == {} and ("rf_trauma_recheck" in clean) is asked, onset


def test_the_stent_date_is_asked_only_for_a_heart_stent():
    """Spec 1.8: "heart_stent (+date)". Old code had no date at all (an unknown field)."""
    clean, errors = schema.validate_all(ALL_SHOWN, TODAY)
    assert errors == {} and clean["anticoag_stent_date"] == "2025-03"
    # optional: a patient may not know the month
    clean, errors = schema.validate_all(with_value("anticoag_stent_date", None), TODAY)
    assert errors == {} and "anticoag_stent_date" not in clean
    # hidden, so neither required nor kept, without a stent or without a blood thinner
    for other in (dict(ALL_SHOWN, anticoag_reason=["afib"]), dict(ALL_SHOWN, anticoag_any=False)):
        clean, errors = schema.validate_all(other, TODAY)
        assert errors == {} and "anticoag_stent_date" not in clean
    _, errors = schema.validate_all(with_value("anticoag_stent_date", "2026-12"), TODAY)
    assert errors == {"anticoag_stent_date": ["This date can't be in the future."]}


def test_each_surgery_is_asked_up_to_the_number_given():
    """Spec 1.6: type, levels and year per surgery. Old code had one set for all of them."""
    for count, asked in (("one", 1), ("two", 2), ("three", 3), ("four_or_more", 3)):
        clean, errors = schema.validate_all(dict(ALL_SHOWN, tx_surgery_count=count), TODAY)
        assert errors == {}, count
        described = {n for n in (1, 2, 3) if f"tx_surgery_{n}_levels" in clean}
        assert described == set(range(1, asked + 1)), count
    # each one asked needs its kind and levels; a year may be left out
    left_out = {"tx_surgery_2_types", "tx_surgery_3_levels", "tx_surgery_1_year"}
    _, errors = schema.validate_all({k: ALL_SHOWN[k] for k in set(ALL_SHOWN) - left_out}, TODAY)
    assert set(errors) == {"tx_surgery_2_types", "tx_surgery_3_levels"}
    clean, errors = schema.validate_all(with_value("tx_lumbar_surgery", False), TODAY)
    assert errors == {} and not any(k.startswith("tx_surgery_") for k in clean)
    # the single set of the old form is not asked or accepted any more
    assert schema.from_json({"tx_surgery_levels": ["L4-5"]})[1] == {
        "tx_surgery_levels": ["Unknown field."]
    }
