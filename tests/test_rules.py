"""Red-flag triage and candidacy signals: pure functions over the rule files."""

from datetime import date

import pytest

from clinic.intake.conditions import evaluate
from clinic.intake.fields import RED_FLAGS
from clinic.intake.rules import PACKAGED_RULES as RULES_DIR
from clinic.intake.rules import Triage, candidacy_signals, load_rules, triage
from tests.conftest import example_values

RULES = load_rules("")
TODAY = date(2026, 11, 24)
EMERGENCY = [
    "rf_urinary_retention",
    "rf_urinary_incontinence",
    "rf_bowel",
    "rf_saddle_numbness",
    "rf_progressive_weakness",
    "rf_bilateral_new",
    "rf_sexual_dysfunction",
]
URGENT = [
    "rf_fever",
    "rf_cancer_history",
    "rf_weight_loss",
    "rf_trauma",
    "rf_infection_risk",
    "rf_night_pain",
]


def test_every_red_flag_question_has_a_tier():
    assert {f.id for f in RED_FLAGS.fields} == set(EMERGENCY + URGENT)
    assert set(RULES.red_flags["tiers"]) >= set(EMERGENCY + URGENT)


def test_all_no_is_routine():
    result = triage(example_values(), RULES)
    assert result.level == Triage.ROUTINE
    assert result.red_flags == [] and result.notes == []


@pytest.mark.parametrize("field", EMERGENCY)
@pytest.mark.parametrize("answer", ["new", "worsening"])
def test_emergency_flags_fire_on_new_or_worsening(field, answer):
    result = triage(example_values(**{field: answer}), RULES)
    assert result.level == Triage.EMERGENCY
    assert result.red_flags == [{"field": field, "tier": "emergency", "answer": answer}]


@pytest.mark.parametrize("field", URGENT)
def test_urgent_flags(field):
    assert triage(example_values(**{field: "worsening"}), RULES).level == Triage.URGENT


@pytest.mark.parametrize("field", EMERGENCY + URGENT)
def test_longstanding_answers_do_not_fire_but_become_notes(field):
    result = triage(example_values(**{field: "longstanding"}), RULES)
    assert result.level == Triage.ROUTINE
    assert [n["field"] for n in result.notes] == [field]


def test_emergency_outranks_urgent():
    result = triage(example_values(rf_fever="new", rf_bowel="worsening"), RULES)
    assert result.level == Triage.EMERGENCY
    assert {f["field"] for f in result.red_flags} == {"rf_fever", "rf_bowel"}


def test_saddle_recheck_fires_as_emergency():
    values = example_values(
        symptom_locations=["genitals_perineum"], rf_saddle_numbness_recheck="new"
    )
    assert triage(values, RULES).level == Triage.EMERGENCY


def test_trauma_recheck_fires_at_the_trauma_tier():
    tiers = RULES.red_flags["tiers"]
    assert tiers["rf_trauma_recheck"] == tiers["rf_trauma"]
    values = example_values(symptom_onset="after_injury", rf_trauma_recheck="new")
    result = triage(values, RULES)
    assert result.level == Triage.URGENT
    assert result.red_flags == [{"field": "rf_trauma_recheck", "tier": "urgent", "answer": "new"}]


def test_triage_reports_the_rules_version():
    assert triage(example_values(), RULES).version == RULES.red_flags["version"]


def _signals(**overrides):
    clinician = overrides.pop("clinician", {})
    return {
        s["code"]: s
        for s in candidacy_signals(example_values(**overrides), clinician, RULES, TODAY)
    }


def test_example_patient_signals():
    s = _signals()
    assert s["NC_PATTERN"]["level"] == "support"
    assert s["DURATION_3M"]["level"] == "support"
    assert s["FAILED_CONSERVATIVE"]["level"] == "support"
    assert s["MEDICARE_CED"]["level"] == "coverage"
    assert s["IMAGING_LF"]["message"].startswith("Imaging review needed")
    assert "ANTICOAG" not in s and "BLEEDING_DISORDER" not in s
    assert s["NC_PATTERN"]["evidence_field_ids"] == [
        "worse_standing",
        "worse_walking",
        "relief_sitting",
        "relief_flexion",
    ]


def test_no_nc_pattern_without_relief():
    s = _signals(relief_sitting=False, relief_flexion=False)
    assert "NC_PATTERN" not in s


@pytest.mark.parametrize(
    ("duration", "level"),
    [("lt_6w", "caution"), ("6w_3m", "caution"), ("3_6m", "support"), ("gt_2y", "support")],
)
def test_duration(duration, level):
    assert _signals(symptom_duration=duration)["DURATION_3M"]["level"] == level


def test_conservative_care_not_tried():
    s = _signals(
        tx_meds=["none"], tx_physical_therapy=False, tx_home_exercise=False, tx_pt_weeks=None
    )
    assert s["FAILED_CONSERVATIVE"]["level"] == "caution"


@pytest.mark.parametrize(("odi", "level_prefix"), [(31, "ODI 31"), (30, "Milder")])
def test_severity_threshold_at_its_edge(odi, level_prefix):
    s = _signals(clinician={"odi_external_score": odi})
    assert s["SEVERITY_THRESH"]["message"].startswith(level_prefix)


def test_low_pain_is_milder_than_trials():
    s = _signals(nprs_back_avg7d=4, nprs_leg_avg7d=4)
    assert s["SEVERITY_THRESH"]["level"] == "caution"
    assert s["SEVERITY_THRESH"]["message"].startswith("Milder")


@pytest.mark.parametrize(("mm", "level"), [(2.5, "support"), (2.4, "caution")])
def test_ligamentum_flavum_threshold(mm, level):
    assert _signals(clinician={"clin_lf_thickness_mm": mm})["IMAGING_LF"]["level"] == level


@pytest.mark.parametrize(("imaging_date", "stale"), [("2025-11", False), ("2025-10", True)])
def test_imaging_older_than_12_months(imaging_date, stale):
    assert ("IMAGING_STALE" in _signals(imaging_date=imaging_date)) is stale


def _surgeries(*levels, count=None):
    """Answers for one lower-back surgery per list of levels, the most recent first."""
    words = ["one", "two", "three"]
    answers = {"tx_lumbar_surgery": True, "tx_surgery_count": count or words[len(levels) - 1]}
    for n, at in enumerate(levels, start=1):
        answers |= {f"tx_surgery_{n}_types": ["fusion"], f"tx_surgery_{n}_levels": at}
    return answers


def test_prior_surgery_at_target_level_is_likely_exclusion():
    surgery = _surgeries(["L4-5"])
    assert _signals(**surgery)["PRIOR_SURGERY_LEVEL"]["level"] == "caution"
    at_target = _signals(**surgery, clinician={"clin_target_levels": ["L4-5"]})
    assert at_target["PRIOR_SURGERY_LEVEL"]["level"] == "likely_exclusion"
    elsewhere = _signals(**surgery, clinician={"clin_target_levels": ["L2-3"]})
    assert "PRIOR_SURGERY_LEVEL" not in elsewhere


def test_an_unknown_level_does_not_hide_a_known_one_at_the_target():
    surgery = _surgeries(["L4-5", "unknown"])
    at_target = _signals(**surgery, clinician={"clin_target_levels": ["L4-5"]})
    assert at_target["PRIOR_SURGERY_LEVEL"]["level"] == "likely_exclusion"
    # the unknown level may still be the target: caution, not silence
    elsewhere = _signals(**surgery, clinician={"clin_target_levels": ["L2-3"]})
    assert elsewhere["PRIOR_SURGERY_LEVEL"]["level"] == "caution"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_surgery_described_counts_at_the_target(n):
    """Spec 1.6: levels per surgery. Old code knew one set of levels for all of them."""
    levels = [["L2-3"], ["L3-4"], ["L5-S1"]]
    levels[n - 1] = ["L4-5"]
    s = _signals(**_surgeries(*levels), clinician={"clin_target_levels": ["L4-5"]})
    assert s["PRIOR_SURGERY_LEVEL"]["level"] == "likely_exclusion"
    assert s["PRIOR_SURGERY_LEVEL"]["evidence_field_ids"] == [
        "tx_lumbar_surgery",
        "prior_surgery_at_target",
    ]


def test_more_surgeries_than_described_may_be_at_the_target():
    surgeries = _surgeries(["L2-3"], ["L3-4"], ["L5-S1"], count="four_or_more")
    s = _signals(**surgeries, clinician={"clin_target_levels": ["L4-5"]})
    assert s["PRIOR_SURGERY_LEVEL"]["level"] == "caution"
    described = _signals(**_surgeries(["L2-3"], ["L3-4"], ["L5-S1"]))
    assert described["PRIOR_SURGERY_LEVEL"]["level"] == "caution"  # no target level yet
    s = _signals(
        **_surgeries(["L2-3"], ["L3-4"], ["L5-S1"]), clinician={"clin_target_levels": ["L4-5"]}
    )
    assert "PRIOR_SURGERY_LEVEL" not in s


def test_a_request_stored_before_surgeries_were_asked_one_by_one_still_counts():
    stored = {"tx_lumbar_surgery": True, "tx_surgery_types": ["fusion"]}
    at_target = _signals(
        **stored, tx_surgery_levels=["L4-5"], clinician={"clin_target_levels": ["L4-5"]}
    )
    assert at_target["PRIOR_SURGERY_LEVEL"]["level"] == "likely_exclusion"
    elsewhere = _signals(
        **stored, tx_surgery_levels=["L2-3"], clinician={"clin_target_levels": ["L4-5"]}
    )
    assert "PRIOR_SURGERY_LEVEL" not in elsewhere


@pytest.mark.parametrize(
    ("overrides", "code", "level"),
    [
        ({"anticoag_any": True, "anticoag_agents": ["warfarin"]}, "ANTICOAG", "caution"),
        ({"bleeding_disorder": True}, "BLEEDING_DISORDER", "likely_exclusion"),
        ({"pregnancy_possible": "unsure"}, "PREGNANCY", "likely_exclusion"),
        ({"active_infection": True}, "INFECTION", "likely_exclusion"),
        ({"allergy_contrast": "yes_mild"}, "CONTRAST_ALLERGY", "caution"),
        ({"relief_standing_still": True}, "VASCULAR_PATTERN", "caution"),
        ({"pad_circulation": True}, "VASCULAR_PATTERN", "caution"),
        ({"tx_esi_last_date": "2026-10"}, "RECENT_ESI", "caution"),
        # a month-only date may be its last day: 30 Sept is under 8 weeks before 24 Nov
        ({"tx_esi_last_date": "2026-09"}, "RECENT_ESI", "caution"),
        ({"can_lie_prone": "no"}, "CANNOT_LIE_PRONE", "caution"),
        ({"date_of_birth": "1980-01-01"}, "AGE_ATYPICAL", "caution"),
        ({"insurance_type": "commercial"}, "COMMERCIAL_POLICY", "coverage"),
        (
            {"clinician": {"clin_spondylolisthesis": "grade_II_plus"}},
            "INSTABILITY",
            "likely_exclusion",
        ),
        ({"clinician": {"clin_mme": 91}}, "HIGH_MME", "caution"),
        ({"clinician": {"clin_foraminal_severe": "severe"}}, "FORAMINAL_SEVERE", "caution"),
        ({"clinician": {"clin_facet_severe": "severe"}}, "FACET_SEVERE", "caution"),
        ({"clinician": {"clin_disc_protrusion": "severe"}}, "DISC_PROTRUSION_SEVERE", "caution"),
    ],
)
def test_signal_fires(overrides, code, level):
    assert _signals(**overrides)[code]["level"] == level


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tx_esi_last_date": "2026-08"}, "RECENT_ESI"),
        ({"clinician": {"clin_mme": 90}}, "HIGH_MME"),
        ({"date_of_birth": "1976-11-24"}, "AGE_ATYPICAL"),
        ({"clinician": {"clin_spondylolisthesis": "grade_I_stable"}}, "INSTABILITY"),
        ({"clinician": {"clin_foraminal_severe": "moderate"}}, "FORAMINAL_SEVERE"),
        ({"clinician": {"clin_facet_severe": "moderate"}}, "FACET_SEVERE"),
        ({"clinician": {"clin_disc_protrusion": "moderate"}}, "DISC_PROTRUSION_SEVERE"),
    ],
)
def test_signal_stays_quiet_at_its_edge(overrides, code):
    assert code not in _signals(**overrides)


def test_thresholds_are_data_a_clinic_can_change(tmp_path):
    import json

    signals = json.loads((RULES_DIR / "signals.json").read_text())
    for signal in signals["signals"]:
        if signal["code"] == "IMAGING_LF":
            signal["outcomes"][0]["when"]["gte"] = 4.1  # MiDAS III's cut-off
    signals["version"] = "clinic-local-1"
    (tmp_path / "signals.json").write_text(json.dumps(signals))
    rules = load_rules(str(tmp_path))
    out = {
        s["code"]: s
        for s in candidacy_signals(example_values(), {"clin_lf_thickness_mm": 3.0}, rules, TODAY)
    }
    assert out["IMAGING_LF"]["level"] == "caution"
    assert rules.version.endswith("clinic-local-1")
    assert rules.red_flags == RULES.red_flags  # files not overridden fall back to the defaults


def test_condition_language():
    answers = {"a": 3, "b": ["x", "y"], "c": None, "d": "2026-01"}
    assert evaluate({"field": "a", "gte": 3}, answers, TODAY)
    assert not evaluate({"field": "a", "gt": 3}, answers, TODAY)
    assert evaluate({"field": "b", "contains_any": ["y", "z"]}, answers, TODAY)
    assert evaluate({"field": "c", "present": False}, answers, TODAY)
    assert not evaluate({"field": "c", "eq": None}, answers, TODAY)
    assert evaluate({"field": "d", "months_ago_gt": 9}, answers, TODAY)
    assert evaluate(
        {"not": {"any": [{"field": "a", "eq": 1}, {"field": "a", "eq": 2}]}}, answers, TODAY
    )


def test_the_physicians_imaging_grades_are_their_own_evidence():
    clinician = {"clin_foraminal_severe": "severe", "clin_disc_protrusion": "severe"}
    s = _signals(clinician=clinician)
    assert s["FORAMINAL_SEVERE"]["evidence_field_ids"] == ["clin_foraminal_severe"]
    assert s["DISC_PROTRUSION_SEVERE"]["evidence_field_ids"] == ["clin_disc_protrusion"]
    assert "FACET_SEVERE" not in s
    assert RULES.signals["version"] == "candidacy-signals-2026.11-v2"
