"""The intake form as data: sections A–H of the domain spec, in the order patients see them.

One source of truth: the multi-step HTML form, the JSON API, the OpenAPI document and the
staff request page are all built from ``SECTIONS``. Values are stored as the canonical codes
listed here; labels are for display only. Field limits follow mild-domain-spec.md §1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

FORM_VERSION = "intake-2026.11-v3"

YES_NO = (("yes", "Yes"), ("no", "No"))
RF_CHOICES = (
    ("no", "No"),
    ("new", "Yes, and it is new (in the last days or weeks)"),
    ("worsening", "Yes, and it is getting worse"),
    ("longstanding", "Yes, but it has not changed for a long time and a doctor has checked it"),
)
BENEFIT = (("none", "No help"), ("some", "Some help"), ("a_lot", "A lot of help"))
LEVELS = (
    ("L1-2", "L1-2"),
    ("L2-3", "L2-3"),
    ("L3-4", "L3-4"),
    ("L4-5", "L4-5"),
    ("L5-S1", "L5-S1"),
    ("unknown", "I don't know"),
)
ALLERGY = (
    ("no", "No"),
    ("yes_mild", "Yes, a mild reaction"),
    ("yes_severe", "Yes, a severe reaction"),
    ("unsure", "Not sure"),
)
US_STATES = tuple(
    (s, s)
    for s in [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "AS",
        "GU",
        "MP",
        "PR",
        "VI",
    ]
)
LANGUAGES = (
    ("en", "English"),
    ("es", "Spanish"),
    ("zh", "Chinese"),
    ("vi", "Vietnamese"),
    ("ko", "Korean"),
    ("ru", "Russian"),
    ("ar", "Arabic"),
    ("fr", "French"),
    ("ht", "Haitian Creole"),
    ("tl", "Tagalog"),
    ("pt", "Portuguese"),
    ("pl", "Polish"),
    ("it", "Italian"),
    ("de", "German"),
    ("hi", "Hindi"),
    ("ja", "Japanese"),
)


@dataclass(frozen=True)
class Field:
    id: str
    label: str
    kind: str  # text, textarea, int, decimal, bool, ack, choice, multi, date, month, email, phone
    required: bool | dict = False  # True, False, or a predicate (conditions.py)
    show_when: dict | None = None  # None: always shown
    choices: tuple[tuple[str, str], ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    min_length: int | None = None
    help: str = ""
    pattern: str | None = None  # named extra check in schema.py: npi, mbi, zip, year
    exclusive: str | None = None  # a multi choice that can't be combined with others
    clinical: bool = True  # front desk and billing don't see clinical answers
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def choice_codes(self) -> tuple[str, ...]:
        # cached: validation asks for it dozens of times per intake
        return tuple(code for code, _ in self.choices)

    def choice_label(self, code: str) -> str:
        return dict(self.choices).get(code, code)


@dataclass(frozen=True)
class Section:
    id: str  # the domain spec's letter
    slug: str
    title: str
    intro: str
    fields: tuple[Field, ...]


def _when(field_id: str, **op: Any) -> dict:
    return {"field": field_id, **op}


def _rf(field_id: str, label: str) -> Field:
    return Field(field_id, label, "choice", True, choices=RF_CHOICES)


def _text(
    field_id,
    label,
    *,
    required=False,
    max_length=100,
    show_when=None,
    help="",
    clinical=False,
    kind="text",
    min_length=None,
):
    return Field(
        field_id,
        label,
        kind,
        required,
        show_when,
        max_length=max_length,
        min_length=min_length if min_length is not None else (1 if required else None),
        help=help,
        clinical=clinical,
    )


RED_FLAGS = Section(
    "C",
    "red-flags",
    "Urgent symptoms check",
    "First, a few questions to make sure you don't need urgent care. For each one, tell us if "
    "you have it now.",
    (
        _rf(
            "rf_urinary_retention",
            "Trouble starting to pee, a weak stream, or not being able to pee at all",
        ),
        _rf(
            "rf_urinary_incontinence",
            "Leaking urine, needing pads, or not knowing when your bladder is full or empty",
        ),
        _rf(
            "rf_bowel",
            "Unable to control your bowels, leaking, or not feeling when you pass a bowel movement",
        ),
        _rf(
            "rf_saddle_numbness",
            "Numbness or pins-and-needles between your legs, around your "
            "genitals or back passage, or on the inner thighs (for example, you can't feel "
            "toilet paper when wiping)",
        ),
        _rf(
            "rf_progressive_weakness",
            "Leg or foot weakness that is getting worse quickly "
            "(foot dragging or slapping, legs giving way)",
        ),
        _rf("rf_bilateral_new", "New pain, numbness or weakness in both legs at the same time"),
        _rf(
            "rf_sexual_dysfunction",
            "New loss of feeling in the genitals, or a new problem with "
            "erection or ejaculation, together with back pain",
        ),
        _rf("rf_fever", "Fever of 100.4°F (38°C) or more, or chills, together with your back pain"),
        _rf("rf_cancer_history", "A history of cancer, with new or worsening back pain"),
        _rf(
            "rf_weight_loss",
            "Weight loss you can't explain (for example, more than 10 lb without trying)",
        ),
        _rf(
            "rf_trauma", "A recent fall, accident or injury that started or worsened the back pain"
        ),
        _rf(
            "rf_infection_risk",
            "IV drug use, a weakened immune system (for example chemotherapy, "
            "transplant drugs, long-term steroids), or a recent spine procedure, together with "
            "fever or worsening pain",
        ),
        _rf("rf_night_pain", "Severe pain at rest or at night that doesn't ease with any position"),
    ),
)

_NOT_SELF = _when("completed_by", ne="self")
_CAREGIVER = _when("caregiver_name", present=True)

CONTACT = Section(
    "A",
    "about-you",
    "About you",
    "How to reach you and who is filling in this form.",
    (
        Field(
            "completed_by",
            "Who is filling in this form?",
            "choice",
            True,
            choices=(
                ("self", "I am the patient"),
                ("family_member", "A family member"),
                ("caregiver", "A caregiver"),
                ("staff_on_behalf", "Clinic staff, for the patient"),
            ),
            clinical=False,
        ),
        _text(
            "proxy_name",
            "Your name (the person filling in the form)",
            required=_NOT_SELF,
            show_when=_NOT_SELF,
        ),
        _text(
            "proxy_relationship",
            "Your relationship to the patient",
            required=_NOT_SELF,
            show_when=_NOT_SELF,
        ),
        _text("first_name", "First name", required=True),
        _text("last_name", "Last name", required=True),
        _text("preferred_name", "Name you'd like us to use", help="We use it in reminders."),
        Field(
            "date_of_birth",
            "Date of birth",
            "date",
            True,
            clinical=False,
            help="Month/day/year, for example 03/27/1951",
            extra={"min_age": 18, "max_age": 120},
        ),
        Field(
            "sex_at_birth",
            "Sex assigned at birth",
            "choice",
            choices=(
                ("female", "Female"),
                ("male", "Male"),
                ("intersex", "Intersex"),
                ("prefer_not_to_say", "Prefer not to say"),
            ),
            clinical=False,
        ),
        _text("gender_identity", "Gender"),
        Field(
            "preferred_contact",
            "Preferred way to reach you",
            "choice",
            True,
            choices=(
                ("email", "Email"),
                ("sms", "Text message"),
                ("phone_call", "Phone call"),
                ("postal_mail", "Letter"),
            ),
            clinical=False,
        ),
        Field(
            "email",
            "Email",
            "email",
            _when("preferred_contact", eq="email"),
            max_length=254,
            clinical=False,
            help="Needed if you'd like us to email you. We only send dates, times and links.",
        ),
        Field(
            "phone_mobile",
            "Mobile phone",
            "phone",
            {
                "any": [
                    _when("email", present=False),
                    _when("preferred_contact", **{"in": ["sms", "phone_call"]}),
                ]
            },
            clinical=False,
            help="US numbers: 10 digits.",
        ),
        Field("phone_other", "Other phone", "phone", clinical=False),
        Field(
            "voicemail_ok",
            "May we leave a voicemail?",
            "bool",
            True,
            choices=YES_NO,
            clinical=False,
            help="We only say our name and a number to call back.",
        ),
        _text(
            "confidential_comms_request",
            "Special instructions for how or where we contact you",
            max_length=500,
            kind="textarea",
        ),
        _text("address_line1", "Address", max_length=200),
        _text("address_line2", "Address line 2", max_length=200),
        _text("city", "City"),
        Field("state", "State", "choice", choices=US_STATES, clinical=False),
        Field("zip", "ZIP code", "text", max_length=10, pattern="zip", clinical=False),
        Field(
            "preferred_language",
            "Preferred language",
            "choice",
            True,
            choices=LANGUAGES,
            clinical=False,
            extra={"default": "en"},
        ),
        Field(
            "interpreter_needed",
            "Do you need an interpreter?",
            "bool",
            choices=YES_NO,
            clinical=False,
        ),
        _text("caregiver_name", "Family member or caregiver we may talk to"),
        _text("caregiver_relationship", "Their relationship to you", show_when=_CAREGIVER),
        Field("caregiver_phone", "Their phone", "phone", show_when=_CAREGIVER, clinical=False),
        Field(
            "may_discuss_care_with_caregiver",
            "Is it OK to discuss your care with this person?",
            "bool",
            _CAREGIVER,
            _CAREGIVER,
            choices=YES_NO,
            clinical=False,
        ),
        _text("referring_provider_name", "Who referred you? (doctor's name)", max_length=200),
        _text("referring_provider_practice", "Their practice", max_length=200),
        Field("referring_provider_phone", "Their phone", "phone", clinical=False),
        Field("referring_provider_fax", "Their fax", "phone", clinical=False),
        Field(
            "referring_provider_npi",
            "Their NPI number, if you know it",
            "text",
            max_length=10,
            pattern="npi",
            clinical=False,
        ),
        _text("pcp_name", "Your primary care doctor", max_length=200),
        Field(
            "how_heard",
            "How did you hear about us?",
            "choice",
            choices=(
                ("referral", "A doctor referred me"),
                ("search", "Internet search"),
                ("vertos_site", "The device maker's website"),
                ("ad", "An advertisement"),
                ("event", "A talk or event"),
                ("other", "Other"),
            ),
            clinical=False,
        ),
    ),
)

_NO_PAYER = ["self_pay", "unknown"]
_MEDICARE = ["medicare_traditional", "medicare_advantage"]
INSURANCE = Section(
    "B",
    "insurance",
    "Insurance",
    "So we can check your coverage before a visit.",
    (
        Field(
            "insurance_type",
            "Main insurance",
            "choice",
            True,
            choices=(
                ("medicare_traditional", "Medicare (original)"),
                ("medicare_advantage", "Medicare Advantage"),
                ("medicaid", "Medicaid"),
                ("commercial", "Employer or private insurance"),
                ("tricare_va", "TRICARE or VA"),
                ("workers_comp", "Workers' compensation"),
                ("self_pay", "I will pay myself"),
                ("other", "Other"),
                ("unknown", "I don't know"),
            ),
            clinical=False,
        ),
        _text(
            "payer_name",
            "Insurance company",
            required=_when("insurance_type", not_in=_NO_PAYER),
            show_when=_when("insurance_type", not_in=_NO_PAYER),
        ),
        _text(
            "member_id",
            "Member ID",
            max_length=40,
            show_when=_when("insurance_type", not_in=_NO_PAYER),
        ),
        Field(
            "medicare_mbi",
            "Medicare number (MBI)",
            "text",
            max_length=13,
            pattern="mbi",
            show_when=_when("insurance_type", **{"in": _MEDICARE}),
            clinical=False,
            help="11 characters, on your red-white-and-blue card",
        ),
        _text(
            "group_number",
            "Group number",
            max_length=40,
            show_when=_when("insurance_type", not_in=_NO_PAYER),
        ),
        _text("secondary_insurance_name", "Secondary insurance company"),
        _text(
            "secondary_member_id",
            "Secondary member ID",
            max_length=40,
            show_when=_when("secondary_insurance_name", present=True),
        ),
    ),
)

_GENITALS_RECHECK = {
    "all": [
        _when("symptom_locations", contains="genitals_perineum"),
        _when("rf_saddle_numbness", eq="no"),
    ]
}
# spec 1.5: a sudden or injury onset asks the trauma red flag again if it was answered "no"
_ONSET_RECHECK = {
    "all": [
        _when("symptom_onset", **{"in": ["sudden_no_injury", "after_injury"]}),
        _when("rf_trauma", eq="no"),
    ]
}
SYMPTOMS = Section(
    "D",
    "symptoms",
    "Your symptoms",
    "Where it hurts, what makes it better or worse, and how far you can walk and stand.",
    (
        Field(
            "symptom_locations",
            "Where are your symptoms?",
            "multi",
            True,
            choices=(
                ("low_back", "Low back"),
                ("buttock", "Buttock"),
                ("groin", "Groin"),
                ("thigh", "Thigh"),
                ("knee", "Knee"),
                ("shin_calf", "Shin or calf"),
                ("foot_toes", "Foot or toes"),
                ("genitals_perineum", "Genitals or between the legs"),
                ("other", "Somewhere else"),
            ),
        ),
        Field(
            "rf_saddle_numbness_recheck",
            "You marked symptoms between your legs. Do you have "
            "numbness or pins-and-needles between your legs, around your genitals or back "
            "passage, or on the inner thighs?",
            "choice",
            _GENITALS_RECHECK,
            _GENITALS_RECHECK,
            choices=RF_CHOICES,
        ),
        Field(
            "symptom_laterality",
            "Which side?",
            "choice",
            True,
            choices=(
                ("left", "Left"),
                ("right", "Right"),
                ("both", "Both"),
                ("alternates", "It changes sides"),
            ),
        ),
        Field(
            "symptom_types",
            "What do they feel like?",
            "multi",
            True,
            choices=(
                ("pain", "Pain"),
                ("numbness", "Numbness"),
                ("tingling", "Tingling"),
                ("weakness", "Weakness"),
                ("heaviness_fatigue", "Heaviness or tiredness"),
                ("cramping", "Cramping"),
                ("burning", "Burning"),
            ),
        ),
        Field(
            "symptom_duration",
            "How long have you had these leg or back symptoms?",
            "choice",
            True,
            choices=(
                ("lt_6w", "Less than 6 weeks"),
                ("6w_3m", "6 weeks to 3 months"),
                ("3_6m", "3 to 6 months"),
                ("6_12m", "6 to 12 months"),
                ("1_2y", "1 to 2 years"),
                ("gt_2y", "More than 2 years"),
            ),
        ),
        Field(
            "symptom_onset",
            "How did it start?",
            "choice",
            True,
            choices=(
                ("gradual", "Slowly, over time"),
                ("sudden_no_injury", "Suddenly, without an injury"),
                ("after_injury", "After an injury or fall"),
            ),
        ),
        Field(
            "rf_trauma_recheck",
            "You said it started suddenly or after an injury. Did a recent fall, accident or "
            "injury start or worsen your back pain?",
            "choice",
            _ONSET_RECHECK,
            _ONSET_RECHECK,
            choices=RF_CHOICES,
        ),
        Field(
            "worse_standing", "Is it worse when you stand upright?", "bool", True, choices=YES_NO
        ),
        Field("worse_walking", "Is it worse when you walk?", "bool", True, choices=YES_NO),
        Field("relief_sitting", "Is it better when you sit down?", "bool", True, choices=YES_NO),
        Field(
            "relief_flexion",
            "Is it better when you bend forward or lean on a shopping cart or walker?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field(
            "relief_time",
            "When you stop walking, how long until it eases?",
            "choice",
            choices=(
                ("lt_2min", "Less than 2 minutes"),
                ("2_10min", "2 to 10 minutes"),
                ("gt_10min", "More than 10 minutes"),
                ("does_not_ease", "It doesn't ease"),
            ),
        ),
        Field(
            "relief_standing_still",
            "Does it go away if you just stand still, without sitting or bending?",
            "bool",
            choices=YES_NO,
        ),
        Field(
            "max_standing_minutes",
            "About how many minutes can you stand before you have to sit or lean?",
            "int",
            True,
            min=0,
            max=240,
            help="0 means you can't stand without support. Up to 240.",
        ),
        Field(
            "max_walking_minutes",
            "About how many minutes can you walk before you have to stop, sit or lean?",
            "int",
            True,
            min=0,
            max=240,
            help="0 to 240 minutes.",
        ),
        Field(
            "walking_distance_band",
            "How far can you walk?",
            "choice",
            choices=(
                ("lt_50ft", "Less than 50 feet"),
                ("50ft_2blocks", "50 feet to 2 blocks"),
                ("2blocks_2miles", "2 blocks to 2 miles"),
                ("gt_2miles", "More than 2 miles"),
            ),
        ),
        Field(
            "walking_aid",
            "Do you use a walking aid?",
            "choice",
            choices=(
                ("none", "No"),
                ("cane", "A cane"),
                ("walker_rollator", "A walker or rollator"),
                ("wheelchair_scooter", "A wheelchair or scooter"),
                ("lean_on_cart", "I lean on a shopping cart"),
            ),
        ),
        Field(
            "falls_12m",
            "How many times have you fallen in the past 12 months?",
            "int",
            min=0,
            max=50,
        ),
        Field(
            "nprs_back_now",
            "Back pain right now (0 = no pain, 10 = worst pain imaginable)",
            "int",
            True,
            min=0,
            max=10,
        ),
        Field(
            "nprs_leg_now", "Leg or buttock pain right now (0 to 10)", "int", True, min=0, max=10
        ),
        Field(
            "nprs_back_avg7d",
            "Average back pain over the past 7 days (0 to 10)",
            "int",
            True,
            min=0,
            max=10,
        ),
        Field(
            "nprs_leg_avg7d",
            "Average leg or buttock pain over the past 7 days (0 to 10)",
            "int",
            True,
            min=0,
            max=10,
        ),
        Field(
            "goals",
            "What matters most to you?",
            "multi",
            choices=(
                ("walk_farther", "Walking farther"),
                ("stand_longer", "Standing longer"),
                ("less_pain", "Less pain"),
                ("fewer_meds", "Taking fewer medicines"),
                ("avoid_open_surgery", "Avoiding open surgery"),
                ("stay_independent", "Staying independent"),
                ("other", "Something else"),
            ),
        ),
    ),
)

_PT = _when("tx_physical_therapy", eq=True)
_HX = _when("tx_home_exercise", eq=True)
_OPIOID = _when("tx_opioid_current", eq=True)
_ESI = _when("tx_esi", eq=True)
_RFA = _when("tx_facet_rfa", eq=True)
_MILD = _when("tx_prior_mild", eq=True)
_SPACER = _when("tx_spacer", eq=True)
_SURGERY = _when("tx_lumbar_surgery", eq=True)
SURGERY_TYPES = (
    ("laminectomy_laminotomy", "Laminectomy or laminotomy"),
    ("discectomy", "Discectomy"),
    ("fusion", "Fusion"),
    ("other", "Other"),
)
# spec 1.6 tx_lumbar_surgery: "per surgery: type, levels, year". The three most recent are
# described; "four or more" leaves the others' levels unknown (rules.derived_facts).
SURGERIES = 3
SURGERY_COUNT = (
    ("one", "One"),
    ("two", "Two"),
    ("three", "Three"),
    ("four_or_more", "Four or more"),
)


def _surgery(n: int) -> tuple[Field, ...]:
    """Type(s), levels and year of the patient's n-th most recent lower-back surgery."""
    counts = [code for code, _ in SURGERY_COUNT[n - 1 :]]
    when = _SURGERY if n == 1 else {"all": [_SURGERY, _when("tx_surgery_count", **{"in": counts})]}
    # types: a multi, as one operation is often two (a laminectomy with a fusion)
    return (
        Field(
            f"tx_surgery_{n}_types",
            f"Surgery {n}: what kind?",
            "multi",
            when,
            when,
            choices=SURGERY_TYPES,
        ),
        Field(
            f"tx_surgery_{n}_levels",
            f"Surgery {n}: at which level(s)?",
            "multi",
            when,
            when,
            choices=LEVELS,
        ),
        Field(
            f"tx_surgery_{n}_year",
            f"Surgery {n}: what year?",
            "int",
            show_when=when,
            min=1940,
            max=2100,
            pattern="year",
        ),
    )


TREATMENTS = Section(
    "E",
    "treatments",
    "Treatments you have tried",
    "Tell us what you have already tried for this problem.",
    (
        Field(
            "tx_physical_therapy",
            "Have you had physical therapy for this problem?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field(
            "tx_pt_weeks",
            "About how many weeks of physical therapy?",
            "int",
            show_when=_PT,
            min=0,
            max=104,
        ),
        Field(
            "tx_pt_last_date",
            "When was your last physical therapy? (month and year)",
            "month",
            show_when=_PT,
        ),
        Field(
            "tx_pt_benefit", "Did physical therapy help?", "choice", show_when=_PT, choices=BENEFIT
        ),
        Field(
            "tx_home_exercise",
            "Have you done a home exercise program?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field(
            "tx_home_exercise_benefit",
            "Did the exercises help?",
            "choice",
            show_when=_HX,
            choices=BENEFIT,
        ),
        Field(
            "tx_meds",
            "Which medicines have you tried for it?",
            "multi",
            True,
            choices=(
                ("none", "None"),
                ("acetaminophen", "Acetaminophen (Tylenol)"),
                ("nsaid", "Anti-inflammatories (ibuprofen, naproxen)"),
                ("gabapentin_pregabalin", "Gabapentin or pregabalin"),
                ("muscle_relaxant", "Muscle relaxants"),
                ("duloxetine", "Duloxetine"),
                ("opioid", "Opioid pain medicine"),
                ("topical", "Creams or patches"),
                ("other", "Other"),
            ),
            exclusive="none",
        ),
        Field(
            "tx_opioid_current",
            "Do you take opioid pain medicine now?",
            "bool",
            True,
            choices=YES_NO,
        ),
        _text(
            "tx_opioid_details",
            "Which one and how much?",
            max_length=200,
            show_when=_OPIOID,
            clinical=True,
        ),
        Field("tx_esi", "Have you had epidural steroid injections?", "bool", True, choices=YES_NO),
        Field("tx_esi_count", "How many?", "int", show_when=_ESI, min=0, max=50),
        Field(
            "tx_esi_last_date", "When was the last one? (month and year)", "month", show_when=_ESI
        ),
        Field("tx_esi_benefit", "Did they help?", "choice", show_when=_ESI, choices=BENEFIT),
        Field(
            "tx_esi_relief_duration",
            "How long did the relief last?",
            "choice",
            show_when=_ESI,
            choices=(
                ("none", "No relief"),
                ("lt_1w", "Less than a week"),
                ("1_4w", "1 to 4 weeks"),
                ("1_3m", "1 to 3 months"),
                ("gt_3m", "More than 3 months"),
            ),
        ),
        Field(
            "tx_facet_rfa",
            "Facet injections, nerve blocks or radiofrequency ablation?",
            "bool",
            choices=YES_NO,
        ),
        Field(
            "tx_facet_rfa_last_date",
            "When was the last one? (month and year)",
            "month",
            show_when=_RFA,
        ),
        Field("tx_chiro_acu", "Chiropractic, acupuncture or massage?", "bool", choices=YES_NO),
        Field(
            "tx_prior_mild", "Have you had a mild® procedure before?", "bool", True, choices=YES_NO
        ),
        Field("tx_prior_mild_date", "When? (month and year)", "month", show_when=_MILD),
        Field(
            "tx_prior_mild_levels", "At which level(s)?", "multi", show_when=_MILD, choices=LEVELS
        ),
        Field(
            "tx_spacer",
            "Have you had an interspinous spacer (for example Superion)?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field("tx_spacer_date", "When? (month and year)", "month", show_when=_SPACER),
        Field("tx_spacer_levels", "At which level(s)?", "multi", show_when=_SPACER, choices=LEVELS),
        Field("tx_scs", "Do you have a spinal cord stimulator?", "bool", choices=YES_NO),
        Field(
            "tx_lumbar_surgery",
            "Have you had lower-back surgery before?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field(
            "tx_surgery_count",
            "How many lower-back surgeries have you had?",
            "choice",
            _SURGERY,
            _SURGERY,
            choices=SURGERY_COUNT,
            help="Then tell us about each one, starting with the most recent "
            "(the three most recent if you have had more).",
        ),
        *(field for n in range(1, SURGERIES + 1) for field in _surgery(n)),
        Field(
            "tx_surgery_recommended",
            "Has a surgeon recommended open surgery?",
            "bool",
            choices=YES_NO,
        ),
    ),
)

_SCAN = _when("imaging_type", **{"in": ["mri", "ct", "ct_myelogram", "xray_only"]})
IMAGING = Section(
    "F",
    "imaging",
    "Scans and imaging",
    "Scans of your lower back, if you have had any.",
    (
        Field(
            "imaging_type",
            "Have you had a scan of your lower back?",
            "choice",
            True,
            choices=(
                ("mri", "MRI"),
                ("ct", "CT scan"),
                ("ct_myelogram", "CT myelogram"),
                ("xray_only", "X-ray only"),
                ("none", "No scan"),
                ("unknown", "I don't know"),
            ),
        ),
        Field(
            "imaging_date",
            "When was it done? (month and year)",
            "month",
            _when("imaging_type", **{"in": ["mri", "ct", "ct_myelogram"]}),
            _SCAN,
        ),
        _text("imaging_facility", "Where was it done?", max_length=200, show_when=_SCAN),
        Field(
            "imaging_lf_mentioned",
            'Does the report mention "ligamentum flavum" thickening?',
            "choice",
            show_when=_SCAN,
            choices=(("yes", "Yes"), ("no", "No"), ("unsure", "Not sure")),
        ),
        Field(
            "mri_contraindication",
            "Do you have a pacemaker, defibrillator or metal implants?",
            "bool",
            choices=YES_NO,
        ),
    ),
)

_ANTICOAG = _when("anticoag_any", eq=True)
_STENT = {"all": [_ANTICOAG, _when("anticoag_reason", contains="heart_stent")]}
# shown unless "male" (also when the question was skipped)
_NOT_MALE = {"not": _when("sex_at_birth", eq="male")}
HEALTH = Section(
    "G",
    "health",
    "Your health",
    "Medicines, allergies and conditions that matter for safe care.",
    (
        Field(
            "anticoag_any",
            "Do you take a blood thinner or anti-platelet medicine?",
            "bool",
            True,
            choices=YES_NO,
            help="Do not stop any blood thinner unless the doctor who prescribed it tells you to.",
        ),
        Field(
            "anticoag_agents",
            "Which?",
            "multi",
            _ANTICOAG,
            _ANTICOAG,
            choices=(
                ("warfarin", "Warfarin (Coumadin)"),
                ("apixaban", "Apixaban (Eliquis)"),
                ("rivaroxaban", "Rivaroxaban (Xarelto)"),
                ("dabigatran", "Dabigatran (Pradaxa)"),
                ("edoxaban", "Edoxaban (Savaysa)"),
                ("clopidogrel", "Clopidogrel (Plavix)"),
                ("prasugrel", "Prasugrel (Effient)"),
                ("ticagrelor", "Ticagrelor (Brilinta)"),
                ("aspirin", "Aspirin"),
                ("aspirin_dipyridamole", "Aspirin with dipyridamole"),
                ("cilostazol", "Cilostazol"),
                ("heparin_lmwh", "Heparin or enoxaparin injections"),
                ("other", "Other"),
            ),
        ),
        Field(
            "anticoag_reason",
            "Why do you take it?",
            "multi",
            _ANTICOAG,
            _ANTICOAG,
            choices=(
                ("afib", "Irregular heartbeat (AFib)"),
                ("heart_stent", "Heart stent"),
                ("heart_valve", "Heart valve"),
                ("dvt_pe", "Blood clot in leg or lung"),
                ("stroke_tia", "Stroke or mini-stroke"),
                ("other", "Other"),
                ("unknown", "I don't know"),
            ),
        ),
        # spec 1.8 "heart_stent (+date)": optional like the other detail dates; a patient may
        # not know it, and the hold plan comes from the prescriber (asked for next) anyway
        Field(
            "anticoag_stent_date",
            "When was the heart stent put in? (month and year)",
            "month",
            show_when=_STENT,
            help="If you don't know, leave this blank.",
        ),
        _text(
            "anticoag_prescriber",
            "Who prescribes it?",
            required=_ANTICOAG,
            max_length=200,
            show_when=_ANTICOAG,
            clinical=True,
        ),
        Field(
            "bleeding_supplements",
            "Do you take any of these supplements?",
            "multi",
            choices=(
                ("fish_oil", "Fish oil"),
                ("vitamin_e", "Vitamin E"),
                ("ginkgo", "Ginkgo"),
                ("garlic", "Garlic"),
                ("turmeric", "Turmeric"),
            ),
        ),
        Field(
            "bleeding_disorder",
            "Do you have a bleeding or clotting disorder, or bleed easily?",
            "bool",
            True,
            choices=YES_NO,
        ),
        _text(
            "bleeding_disorder_detail",
            "Tell us more",
            max_length=500,
            kind="textarea",
            show_when=_when("bleeding_disorder", eq=True),
            clinical=True,
        ),
        Field("liver_kidney_disease", "Liver or kidney disease?", "bool", choices=YES_NO),
        Field(
            "pregnancy_possible",
            "Could you be pregnant?",
            "choice",
            _NOT_MALE,
            _NOT_MALE,
            choices=(
                ("no", "No"),
                ("yes", "Yes"),
                ("unsure", "Not sure"),
                ("not_applicable", "Does not apply to me"),
            ),
        ),
        Field(
            "allergy_contrast",
            'Are you allergic to x-ray contrast ("dye")?',
            "choice",
            True,
            choices=ALLERGY,
        ),
        Field(
            "allergy_local_anesthetic",
            "Are you allergic to numbing medicine (for example lidocaine)?",
            "choice",
            True,
            choices=ALLERGY,
        ),
        Field("allergy_latex", "Are you allergic to latex?", "bool", choices=YES_NO),
        _text("allergy_other", "Other allergies", max_length=300, clinical=True),
        Field(
            "active_infection",
            "Do you have an infection now, open sores on your back, or are you taking antibiotics?",
            "bool",
            True,
            choices=YES_NO,
        ),
        Field("diabetes", "Diabetes?", "bool", choices=YES_NO),
        Field(
            "diabetes_on_insulin",
            "Do you use insulin?",
            "bool",
            show_when=_when("diabetes", eq=True),
            choices=YES_NO,
        ),
        Field(
            "pad_circulation",
            "Poor leg circulation (peripheral artery disease)?",
            "bool",
            choices=YES_NO,
        ),
        Field(
            "neuropathy",
            "Peripheral neuropathy (nerve damage in the feet or hands)?",
            "bool",
            choices=YES_NO,
        ),
        Field("osteoporosis_fracture", "Osteoporosis or a spine fracture?", "bool", choices=YES_NO),
        Field("hip_problem", "Hip arthritis or a hip replacement?", "bool", choices=YES_NO),
        Field("cancer_history", "Have you ever had cancer?", "bool", choices=YES_NO),
        _text(
            "cancer_type", "What kind?", show_when=_when("cancer_history", eq=True), clinical=True
        ),
        Field(
            "cancer_active",
            "Is it being treated now?",
            "bool",
            show_when=_when("cancer_history", eq=True),
            choices=YES_NO,
        ),
        Field(
            "sedation_risks",
            "Do any of these apply to you?",
            "multi",
            choices=(
                ("sleep_apnea", "Sleep apnea or CPAP"),
                ("copd_oxygen", "COPD or home oxygen"),
                ("heart_failure", "Heart failure"),
                ("anesthesia_problem", "A past problem with anesthesia"),
            ),
        ),
        Field(
            "cardiac_device",
            "Do you have a pacemaker, defibrillator or spinal stimulator?",
            "bool",
            choices=YES_NO,
        ),
        Field(
            "can_lie_prone",
            "Can you lie on your stomach for about an hour?",
            "choice",
            True,
            choices=(("yes", "Yes"), ("with_difficulty", "Yes, with difficulty"), ("no", "No")),
        ),
        Field("height_in", "Height (inches)", "int", min=36, max=96),
        Field("weight_lb", "Weight (pounds)", "int", min=50, max=700),
        _text(
            "med_list",
            "Your current medicines (name and dose)",
            max_length=2000,
            kind="textarea",
            clinical=True,
        ),
        Field(
            "tobacco",
            "Do you use tobacco?",
            "choice",
            choices=(("never", "Never"), ("former", "I used to"), ("current", "Yes, now")),
        ),
        Field(
            "driver_available",
            "Will an adult be able to drive you home after a procedure with sedation?",
            "choice",
            choices=(("yes", "Yes"), ("no", "No"), ("unsure", "Not sure")),
        ),
    ),
)

CONSENT = Section(
    "H",
    "consent",
    "Consent and signature",
    "Please read and confirm.",
    (
        Field(
            "ack_not_emergency",
            "I understand this form is not for emergencies and is not monitored 24/7.",
            "ack",
            True,
            clinical=False,
        ),
        Field(
            "ack_npp",
            "I have received, or can view, the Notice of Privacy Practices.",
            "ack",
            True,
            clinical=False,
            extra={"consent_text": "npp"},
        ),
        Field(
            "consent_email",
            "It is OK to send appointment reminders and questionnaire links by "
            "email. I understand regular email may not be secure.",
            "bool",
            _when("preferred_contact", eq="email"),
            choices=YES_NO,
            clinical=False,
            extra={"consent_text": "email", "true_when_required": True},
        ),
        Field(
            "consent_sms",
            "It is OK to text me reminders (message and data rates may apply; "
            "reply STOP to opt out).",
            "bool",
            choices=YES_NO,
            clinical=False,
            extra={"consent_text": "sms"},
        ),
        Field(
            "consent_qi_use",
            "It is OK to use my answers, without my name, to improve care and measure results.",
            "bool",
            choices=YES_NO,
            clinical=False,
            extra={"consent_text": "qi"},
        ),
        Field(
            "attest_accurate",
            "The information I gave is accurate to the best of my knowledge.",
            "ack",
            True,
            clinical=False,
        ),
        _text(
            "e_signature", "Type your full name as your signature", required=True, max_length=200
        ),
    ),
)

SECTIONS: tuple[Section, ...] = (
    RED_FLAGS,
    CONTACT,
    INSURANCE,
    SYMPTOMS,
    TREATMENTS,
    IMAGING,
    HEALTH,
    CONSENT,
)
FIELDS: dict[str, Field] = {f.id: f for s in SECTIONS for f in s.fields}
# Questions of earlier form versions, under the question they followed, so that requests
# stored with them stay readable for staff. They are neither asked nor accepted.
RETIRED: dict[str, tuple[Field, ...]] = {
    "tx_lumbar_surgery": (
        Field(
            "tx_surgery_types", "What kind of surgery? (form v2)", "multi", choices=SURGERY_TYPES
        ),
        Field("tx_surgery_levels", "At which level(s)? (form v2)", "multi", choices=LEVELS),
        Field("tx_surgery_year", "Year of the most recent surgery (form v2)", "int"),
    ),
}
# Every answer that names levels of an earlier lower-back surgery, the retired one included.
SURGERY_LEVEL_FIELDS = (
    "tx_surgery_levels",
    *(f"tx_surgery_{n}_levels" for n in range(1, SURGERIES + 1)),
)
SECTION_BY_SLUG: dict[str, Section] = {s.slug: s for s in SECTIONS}
