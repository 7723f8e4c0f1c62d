"""Validation of intake answers against fields.py: one set of rules for the form and the API.

Input arrives either as HTML form strings (``from_form``) or as JSON values (``from_json``);
both turn into the same Python values, then ``validate`` applies the same limits, conditions
and cross-field rules. Errors are plain-language messages keyed by field id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from email_validator import EmailNotValidError, validate_email

from clinic.intake.conditions import age_on, evaluate
from clinic.intake.fields import FIELDS, SECTIONS, Field, Section
from clinic.limits import storable

Errors = dict[str, list[str]]

# re.ASCII: \d alone also matches other scripts' digits ("٢", "５"), which int() reads and
# a ZIP, phone or NPI must not contain.
_INT = re.compile(r"^-?\d{1,9}$", re.ASCII)
_DECIMAL = re.compile(r"^-?\d{1,6}(\.\d{1,3})?$", re.ASCII)
_ZIP = re.compile(r"^\d{5}(-?\d{4})?$", re.ASCII)
_MBI = re.compile(
    r"^[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]"
    r"[AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]{2}\d{2}$",
    re.ASCII,
)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)
_MONTH_US = re.compile(r"^(\d{1,2})/(\d{4})$", re.ASCII)


class FieldError(ValueError):
    """One message for one field."""


def is_shown(field: Field, answers: Mapping[str, Any], today: date) -> bool:
    return field.show_when is None or evaluate(field.show_when, answers, today)


def is_required(field: Field, answers: Mapping[str, Any], today: date) -> bool:
    if isinstance(field.required, dict):
        return evaluate(field.required, answers, today)
    return bool(field.required)


# -- parsing: HTML strings and JSON values into Python values ------------------------------------


def from_form(section: Section, formdata) -> tuple[dict[str, Any], Errors]:
    """Parse one step's posted form (a werkzeug MultiDict) into values."""
    values: dict[str, Any] = {}
    errors: Errors = {}
    for field in section.fields:
        try:
            if field.kind == "multi":
                raw_list = [v for v in formdata.getlist(field.id) if v != ""]
                values[field.id] = _parse_multi(field, raw_list)
            elif field.kind == "ack":
                values[field.id] = formdata.get(field.id) in {"y", "yes", "on", "true"}
            else:
                values[field.id] = _parse_text_input(field, formdata.get(field.id, ""))
        except FieldError as exc:
            errors[field.id] = [str(exc)]
    return values, errors


def from_json(payload: Any, fields: Iterable[Field] | None = None) -> tuple[dict[str, Any], Errors]:
    """Check JSON types and parse values; unknown names are errors too."""
    if not isinstance(payload, dict):
        return {}, {"_body": ["The body must be a JSON object."]}
    known = {f.id: f for f in fields} if fields is not None else FIELDS
    values: dict[str, Any] = {}
    errors: Errors = {}
    for name, raw in payload.items():
        field = known.get(name)
        if field is None:
            errors[str(name)[:64]] = ["Unknown field."]
            continue
        try:
            values[name] = _parse_json_value(field, raw)
        except FieldError as exc:
            errors[name] = [str(exc)]
    return values, errors


def _parse_text_input(field: Field, raw: str) -> Any:
    raw = raw.strip()
    if raw == "":
        return None
    if field.kind == "int":
        if not _INT.match(raw):
            raise FieldError("Enter a whole number, like 15.")
        return int(raw)
    if field.kind == "decimal":
        if not _DECIMAL.match(raw):
            raise FieldError("Enter a number, like 3.5.")
        return float(raw)
    if field.kind == "bool":
        if raw not in {"yes", "no"}:
            raise FieldError("Choose yes or no.")
        return raw == "yes"
    return _parse_string(field, raw)


def _parse_json_value(field: Field, raw: Any) -> Any:
    if raw is None:
        return None
    kind = field.kind
    if kind in {"int", "decimal"}:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise FieldError("Must be a number.")
        if kind == "int" and (isinstance(raw, float) and not raw.is_integer()):
            raise FieldError("Must be a whole number.")
        if isinstance(raw, float) and raw != raw:  # NaN
            raise FieldError("Must be a number.")
        return int(raw) if kind == "int" else float(raw)
    if kind in {"bool", "ack"}:
        if not isinstance(raw, bool):
            raise FieldError("Must be true or false.")
        return raw
    if kind == "choice" and field.extra.get("int_codes"):
        # a score (the ODI's 0..5): a JSON number, its code the number as text
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise FieldError("Must be a whole number.")
        return _parse_string(field, str(raw))
    if kind == "multi":
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise FieldError("Must be a list of codes.")
        return _parse_multi(field, raw)
    if not isinstance(raw, str):
        raise FieldError("Must be a string.")
    raw = raw.strip()
    return None if raw == "" else _parse_string(field, raw)


def _parse_multi(field: Field, raw: list[str]) -> list[str] | None:
    if len(raw) > len(field.choices):
        raise FieldError("Too many choices.")
    bad = [x for x in raw if x not in field.choice_codes]
    if bad:
        raise FieldError("Choose from the options given.")
    # canonical order, no duplicates
    chosen = [code for code in field.choice_codes if code in raw]
    return chosen or None


def _parse_string(field: Field, raw: str) -> Any:
    kind = field.kind
    if kind == "choice":
        if raw not in field.choice_codes:
            raise FieldError("Choose one of the options given.")
        return int(raw) if field.extra.get("int_codes") else raw
    if kind == "date":
        return _parse_date(raw)
    if kind == "month":
        return _parse_month(raw)
    if kind == "email":
        if len(raw) > 254:
            raise FieldError("Use at most 254 characters.")
        try:
            # lower case throughout, so one address matches one patient (and its index)
            return validate_email(raw, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            raise FieldError("Enter an email address like name@example.com.") from None
    if kind == "phone":
        return _parse_phone(raw)
    if not storable(raw):
        raise FieldError("Remove the special characters.")
    return raw


_DATE_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$", re.ASCII)


def _parse_date(raw: str) -> str:
    """YYYY-MM-DD, or the US MM/DD/YYYY that patients type; stored as YYYY-MM-DD."""
    try:
        us = _DATE_US.match(raw)
        if us:
            month, day, year = (int(g) for g in us.groups())
            return date(year, month, day).isoformat()
        if len(raw) == 10:
            return date.fromisoformat(raw).isoformat()
    except ValueError:
        pass
    raise FieldError("Enter a real date, like 03/27/1951.")


def _parse_month(raw: str) -> str:
    m = _MONTH.match(raw)
    year, month = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not m:
        us = _MONTH_US.match(raw)
        if us:
            year, month = int(us.group(2)), int(us.group(1))
    if not (1900 <= year <= 2999 and 1 <= month <= 12):
        raise FieldError("Enter a month and year, like 2025-06.")
    return f"{year:04d}-{month:02d}"


def _ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() is also true for "²" or "５"."""
    return text.isascii() and text.isdigit()


def _parse_phone(raw: str) -> str:
    if len(raw) > 30:
        raise FieldError("Enter a phone number of at most 15 digits.")
    digits = re.sub(r"[\s().\-]", "", raw)
    if digits.startswith("+"):
        rest = digits[1:]
        if _ascii_digits(rest) and 8 <= len(rest) <= 15:
            return "+" + rest
    elif _ascii_digits(digits):
        if len(digits) == 10 and digits[0] not in "01":
            return "+1" + digits
        if len(digits) == 11 and digits[0] == "1" and digits[1] not in "01":
            return "+" + digits
    raise FieldError("Enter a 10-digit US phone number, like 555-201-0123.")


# -- validation: limits, conditions and cross-field rules ----------------------------------------


def validate(
    sections: Iterable[Section], values: Mapping[str, Any], context: Mapping[str, Any], today: date
) -> tuple[dict[str, Any], Errors]:
    """Apply every rule of the given sections; return the kept values and the errors.

    ``context`` holds answers from other sections that conditions may read. Values of fields
    that are hidden by their condition are dropped, so nothing stale is stored.
    """
    answers = {**context, **values}
    clean: dict[str, Any] = {}
    errors: Errors = {}
    for section in sections:
        for field in section.fields:
            if not is_shown(field, answers, today):
                continue
            value = values.get(field.id)
            if (
                field.kind == "choice"
                and value is None
                and field.extra.get("default")
                and field.id not in values
            ):
                value = field.extra["default"]
            try:
                value = _check(field, value, answers, today)
            except FieldError as exc:
                errors.setdefault(field.id, []).append(str(exc))
                continue
            if value is not None:
                clean[field.id] = value
        _check_groups(section, answers, clean, errors, today)
    return clean, errors


def _check_groups(
    section: Section, answers: Mapping[str, Any], clean: dict, errors: Errors, today: date
) -> None:
    """A group of questions (the ODI's sections) of which at least ``min_answered`` must be
    answered; each one may be left blank. The message goes on every blank one."""
    groups: dict[str, list[Field]] = {}
    for field in section.fields:
        if "min_answered" in field.extra and is_shown(field, answers, today):
            groups.setdefault(field.extra["group"], []).append(field)
    for members in groups.values():
        minimum = members[0].extra["min_answered"]
        if sum(f.id in clean or f.id in errors for f in members) >= minimum:
            continue
        for field in members:
            if field.id not in errors and field.id not in clean:
                errors[field.id] = [
                    f"Choose an answer: answer at least {minimum} of these {len(members)}."
                ]


def validate_all(
    values: Mapping[str, Any], today: date, sections: Iterable[Section] = SECTIONS
) -> tuple[dict[str, Any], Errors]:
    return validate(sections, values, {}, today)


def _check(field: Field, value: Any, answers: Mapping[str, Any], today: date) -> Any:
    required = is_required(field, answers, today)
    if field.kind == "ack":
        if required and value is not True:
            raise FieldError("Tick this box to continue.")
        return bool(value)
    if value is None:
        if required:
            raise FieldError(_missing_message(field))
        return None
    if field.extra.get("true_when_required") and required and value is not True:
        raise FieldError("We need your OK to email you, or choose another way to reach you.")
    if isinstance(value, str):
        if field.min_length and len(value) < field.min_length:
            raise FieldError("This can't be empty.")
        if field.max_length and len(value) > field.max_length:
            raise FieldError(f"Use at most {field.max_length} characters.")
    if field.kind in {"int", "decimal"}:
        if field.min is not None and value < field.min:
            raise FieldError(f"Enter a number from {field.min} to {field.max}.")
        if field.max is not None and value > field.max:
            raise FieldError(f"Enter a number from {field.min} to {field.max}.")
    if field.kind == "multi" and field.exclusive and field.exclusive in value and len(value) > 1:
        raise FieldError(
            f'"{field.choice_label(field.exclusive)}" can\'t be combined with other choices.'
        )
    if field.kind == "date":
        _check_dob(field, date.fromisoformat(value), today)
    if field.kind == "month" and value > today.strftime("%Y-%m"):
        raise FieldError("This date can't be in the future.")
    if field.pattern:
        value = _PATTERNS[field.pattern](value, today)
    return value


def _missing_message(field: Field) -> str:
    if field.kind in {"choice", "bool"}:
        return "Choose an answer."
    if field.kind == "multi":
        return "Choose at least one."
    return "This is required."


def _check_dob(field: Field, born: date, today: date) -> None:
    if born > today:
        raise FieldError("Date of birth can't be in the future.")
    age = age_on(born, today)
    lo, hi = field.extra.get("min_age", 0), field.extra.get("max_age", 150)
    if age < lo:
        raise FieldError(f"You must be at least {lo} to use this form. Please call us.")
    if age > hi:
        raise FieldError("Check the year of birth.")


def _zip(value: str, today: date) -> str:
    if not _ZIP.match(value):
        raise FieldError("Enter a 5-digit ZIP code, like 02139, or ZIP+4.")
    digits = value.replace("-", "")
    return digits if len(digits) == 5 else f"{digits[:5]}-{digits[5:]}"


def _npi(value: str, today: date) -> str:
    if not (_ascii_digits(value) and len(value) == 10 and npi_checksum_ok(value)):
        raise FieldError("An NPI is 10 digits; check the number.")
    return value


def npi_checksum_ok(npi: str) -> bool:
    """The Luhn check over the NPI with the 80840 health-industry prefix."""
    digits = [int(d) for d in "80840" + npi]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mbi(value: str, today: date) -> str:
    compact = value.replace("-", "").replace(" ", "").upper()
    if not _MBI.match(compact):
        raise FieldError("A Medicare number has 11 letters and digits, like 1EG4-TE5-MK73.")
    return compact


def _year(value: int, today: date) -> int:
    if value > today.year:
        raise FieldError("This year can't be in the future.")
    return value


_PATTERNS = {"zip": _zip, "npi": _npi, "mbi": _mbi, "year": _year}


def signature_warning(answers: Mapping[str, Any]) -> str | None:
    """A warning, never a block, when the signature doesn't look like the signer's name."""
    signature = (answers.get("e_signature") or "").casefold()
    if not signature:
        return None
    if answers.get("completed_by", "self") != "self" and answers.get("proxy_name"):
        name = answers["proxy_name"]
    else:
        name = f"{answers.get('first_name', '')} {answers.get('last_name', '')}"
    parts = [p for p in name.casefold().split() if p]
    if parts and not all(p in signature for p in parts):
        return "The signature doesn't match the name given. We will confirm it with you."
    return None
