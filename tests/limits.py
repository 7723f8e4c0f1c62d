"""Edge cases for every intake field, generated from fields.py, shared by the form and API tests.

Each case is (field_id, value, ok): a JSON-typed value at or just past a limit, and whether the
intake must accept it. ``ALL_SHOWN`` is a complete, valid intake in which every conditional field
is shown, so each field's own limits are what is tested.
"""

from __future__ import annotations

from datetime import date

from clinic.intake.fields import FIELDS, Field
from clinic.intake.schema import is_required
from tests.conftest import example_values

TODAY = date(2026, 11, 24)  # FIXED_NOW in New York

ALL_SHOWN = example_values(
    completed_by="family_member",
    proxy_name="Ann Okafor",
    proxy_relationship="Daughter",
    caregiver_name="Ann Okafor",
    caregiver_relationship="Daughter",
    caregiver_phone="5552010199",
    may_discuss_care_with_caregiver=True,
    secondary_insurance_name="AARP Supplement",
    medicare_mbi="1EG4-TE5-MK73",
    member_id="ABC123",
    group_number="G1",
    symptom_locations=["low_back", "genitals_perineum"],
    rf_saddle_numbness_recheck="no",
    symptom_onset="after_injury",
    rf_trauma_recheck="no",
    tx_pt_last_date="2025-06",
    tx_pt_benefit="some",
    tx_home_exercise_benefit="some",
    tx_opioid_current=True,
    tx_opioid_details="tramadol 50 mg",
    tx_esi_last_date="2025-01",
    tx_esi_benefit="some",
    tx_esi_relief_duration="1_4w",
    tx_facet_rfa=True,
    tx_facet_rfa_last_date="2024-05",
    tx_prior_mild=True,
    tx_prior_mild_date="2023-02",
    tx_prior_mild_levels=["L4-5"],
    tx_spacer=True,
    tx_spacer_date="2022-01",
    tx_spacer_levels=["L3-4"],
    tx_lumbar_surgery=True,
    tx_surgery_count="three",
    tx_surgery_1_types=["discectomy"],
    tx_surgery_1_levels=["L5-S1"],
    tx_surgery_1_year=2010,
    tx_surgery_2_types=["laminectomy_laminotomy", "fusion"],
    tx_surgery_2_levels=["L4-5", "L5-S1"],
    tx_surgery_2_year=2004,
    tx_surgery_3_types=["other"],
    tx_surgery_3_levels=["unknown"],
    tx_surgery_3_year=1998,
    imaging_facility="City Imaging",
    imaging_lf_mentioned="yes",
    anticoag_any=True,
    anticoag_agents=["aspirin"],
    anticoag_reason=["heart_stent"],
    anticoag_stent_date="2025-03",
    anticoag_prescriber="Dr. Feld",
    bleeding_disorder=True,
    bleeding_disorder_detail="bruise easily",
    diabetes=True,
    diabetes_on_insulin=False,
    cancer_history=True,
    cancer_type="skin",
    cancer_active=False,
    pregnancy_possible="no",
    e_signature="Ann Okafor",
)

_PATTERN_VALID = {
    "zip": ("02139", ["2139", "021390"]),
    "npi": ("1245319599", ["1245319598", "12453195"]),
    "mbi": ("1EG4TE5MK73", ["1EG4TE5MK7", "0EG4TE5MK73"]),
}


def cases_for(field: Field) -> list[tuple[str, object, bool]]:
    fid, kind = field.id, field.kind
    out: list[tuple[str, object, bool]] = []
    required = is_required(field, ALL_SHOWN, TODAY)
    if required and "default" not in field.extra:
        out.append((fid, None, False))
    if kind in {"text", "textarea"} and not field.pattern:
        if field.max_length:
            out += [(fid, "x" * field.max_length, True), (fid, "x" * (field.max_length + 1), False)]
        out.append((fid, 12, False))  # wrong type
    elif kind == "text" and field.pattern:
        good, bads = _PATTERN_VALID[field.pattern]
        out.append((fid, good, True))
        out += [(fid, bad, False) for bad in bads]
    elif kind in {"int", "decimal"}:
        lo, hi = field.min, field.max
        if field.pattern == "year":
            hi = TODAY.year
        out += [
            (fid, lo, True),
            (fid, hi, True),
            (fid, lo - 1, False),
            (fid, hi + 1, False),
            (fid, "7", False),
            (fid, 1.5, False),
            (fid, True, False),
        ]
    elif kind == "bool":
        false_ok = not (required and field.extra.get("true_when_required"))
        out += [(fid, True, True), (fid, False, false_ok), (fid, "yes", False), (fid, 1, False)]
    elif kind == "ack":
        out += [(fid, True, True), (fid, "true", False)]
        if field.required is True:
            out.append((fid, False, False))
    elif kind == "choice":
        out += [
            (fid, field.choice_codes[-1], True),
            (fid, "not-a-code", False),
            (fid, ["list"], False),
        ]
    elif kind == "multi":
        out += [
            (fid, list(field.choice_codes[:1]), True),
            (fid, ["not-a-code"], False),
            (fid, field.choice_codes[0], False),
        ]
        if field.exclusive:
            others = [c for c in field.choice_codes if c != field.exclusive][:1]
            out.append((fid, [field.exclusive, *others], False))
    elif kind == "date":  # date of birth: age 18 to 120 at submit
        out += [
            (fid, "2008-11-24", True),
            (fid, "2008-11-25", False),
            (fid, "1905-11-25", True),
            (fid, "1905-11-24", False),
            (fid, "2026-02-30", False),
            (fid, "24/11/1950", False),
            (fid, "2027-01-01", False),
        ]
    elif kind == "month":
        out += [
            (fid, "2026-11", True),
            (fid, "2026-12", False),
            (fid, "2026-13", False),
            (fid, "1899-12", False),
            (fid, "soon", False),
        ]
    elif kind == "email":
        local = "a" * 64
        domain = ".".join(["b" * 60] * 3) + ".com"
        out += [
            (fid, f"{local}@{domain}", True),
            (fid, "not-an-email", False),
            (fid, "x" * 250 + "@example.com", False),
        ]
    elif kind == "phone":
        out += [
            (fid, "(555) 201-0123", True),
            (fid, "+442071838750", True),
            (fid, "555-0123", False),
            (fid, "1" * 40, False),
            (fid, 5552010123, False),
        ]
    return out


ALL_CASES = [case for field in FIELDS.values() for case in cases_for(field)]


def with_value(field_id: str, value) -> dict:
    values = dict(ALL_SHOWN)
    if value is None:
        values.pop(field_id, None)
    else:
        values[field_id] = value
    return values


def _form_value(field: Field, value):
    """The JSON-typed value as a browser would post it, or _SKIP when it has no form shape."""
    kind = field.kind
    if value is None:
        return None
    if kind in {"int", "decimal"}:
        if isinstance(value, bool | str):
            return _SKIP
        return str(value)
    if kind == "bool":
        return {True: "yes", False: "no"}.get(value, _SKIP) if isinstance(value, bool) else _SKIP
    if kind == "ack":
        return ("y" if value else None) if isinstance(value, bool) else _SKIP
    if kind == "multi":
        return value if isinstance(value, list) else _SKIP
    return value if isinstance(value, str) else _SKIP


_SKIP = object()


def form_cases_for(field: Field) -> list[tuple[str, object, bool]]:
    out = []
    for fid, value, ok in cases_for(field):
        form_value = _form_value(field, value)
        if form_value is not _SKIP:
            out.append((fid, form_value, ok))
    if field.kind == "int":
        out += [(field.id, "twelve", False), (field.id, "1.5", False)]
    if field.kind == "bool":
        out.append((field.id, "maybe", False))
    return out


def to_form(fields, values: dict) -> dict:
    """Form data for one step from JSON-typed values."""
    data = {}
    for field in fields:
        value = _form_value(field, values.get(field.id))
        if value is not None and value is not _SKIP:
            data[field.id] = value
    return data
