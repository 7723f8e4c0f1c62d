"""Idempotency-Key: a retried POST gets the first answer, even when the retries race.

A key expires a day after its first request (``idempotency_records.RETENTION``), as the IETF
httpapi Idempotency-Key draft suggests: the record keeps the first answer, and a booking's answer
holds the patient's manage link. A retry after that is a new request (it runs, and its answer is
kept for the next day), whether or not the beat task that deletes expired records
(``scheduling.purge_idempotency_records``) has reached the old one: the lookup ignores an expired
record, and takes its place.

Keys are per caller: by default the caller is its Authorization header (a staff token); a view
whose callers have none names them another way (``by_bearer_or_body``: a patient by the booking
token in the body; ``by_bearer_or_whole_body``: an anonymous intake by all it says). Only a hash
of that name is stored, in the record's endpoint.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from flask import jsonify, request
from sqlalchemy import Row, delete, select, update
from sqlalchemy.exc import IntegrityError

from clinic.extensions import db
from clinic.limits import storable
from clinic.models import utcnow
from clinic.scheduling.idempotency_records import expired
from clinic.scheduling.models import IdempotencyRecord

IN_PROGRESS = 0
WAIT_SECONDS = 10.0
# A request still "in progress" after this long is dead: gunicorn ends a request after its
# worker timeout (30 s by default), so its process died before storing the answer.
ABANDONED_AFTER = timedelta(minutes=2)
_TAKEN_OVER = object()
_PURGED = object()


def _authorization() -> str:
    return request.headers.get("Authorization", "")


def by_bearer_or_body(field: str) -> Callable[[], str]:
    """Name the caller by its Authorization header or, with none, by the JSON body's ``field``
    (a patient's booking token), so that two patients who pick the same key never share it."""

    def name() -> str:
        if authorization := _authorization():
            return authorization
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # too deeply nested: the view answers with a 422
            return ""
        value = body.get(field) if isinstance(body, dict) else None
        return f"{field} {value}" if isinstance(value, str) and value else ""

    return name


def by_bearer_or_whole_body() -> str:
    """Name the caller by its Authorization header or, with none (a patient's own intake), by
    the whole body: anonymous callers cannot be told apart, so two of them who pick the same
    key (a kiosk counting from 1, say) each get their own answer, never the 422 of a key reused
    with another body, nor the other's answer; the same body retried is still replayed."""
    return _authorization() or "body " + hashlib.sha256(request.get_data()).hexdigest()


def idempotent(view=None, *, caller: Callable[[], str] = _authorization):
    """Wrap a JSON POST view: the first call's status and body are kept under the key.

    ``caller`` names who is asking (by default, the Authorization header): keys are per caller.
    """
    if view is None:
        return lambda view: idempotent(view, caller=caller)

    @wraps(view)
    def wrapped(*args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view(*args, **kwargs)
        if len(key) > 200:
            return jsonify({"errors": {"Idempotency-Key": ["Use at most 200 characters."]}}), 422
        if not storable(key):
            return jsonify({"errors": {"Idempotency-Key": ["Remove the special characters."]}}), 422
        # Keys are per caller: another caller's key never replays this caller's answer. The
        # name may be a secret (a token): only its hash is stored. (surrogatepass: a JSON body
        # may hold a lone surrogate, which the view refuses with a 422.)
        named = hashlib.sha256(caller().encode("utf-8", "surrogatepass")).hexdigest()
        endpoint = f"{request.method} {request.path} {named[:32]}"
        digest = hashlib.sha256(request.get_data()).hexdigest()
        replayed = _claim(key, endpoint, digest)
        if replayed is not None:
            return replayed
        try:
            response = view(*args, **kwargs)
        except Exception:
            _forget(key, endpoint)
            raise
        flask_response = _as_response(response)
        if flask_response.status_code >= 500 or flask_response.status_code in (401, 403, 429):
            _forget(key, endpoint)
            return flask_response
        db.session.rollback()  # whatever the view left uncommitted is not part of the answer
        db.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == key, IdempotencyRecord.endpoint == endpoint)
            .values(status_code=flask_response.status_code, body=flask_response.get_json())
        )
        db.session.commit()
        return flask_response

    return wrapped


def _as_response(rv):
    from flask import current_app

    return current_app.make_response(rv)


def _claim(key: str, endpoint: str, digest: str):
    """None when this request now holds the key (the view runs), else the answer to give."""
    while True:
        try:  # claim the key in its own transaction, so a racing retry sees it
            db.session.add(
                IdempotencyRecord(
                    key=key,
                    endpoint=endpoint,
                    request_hash=digest,
                    status_code=IN_PROGRESS,
                    body={},
                )
            )
            db.session.commit()
            return None
        except IntegrityError:
            db.session.rollback()
        replayed = _replay(key, endpoint, digest)
        if replayed is _TAKEN_OVER:
            return None
        if replayed is not _PURGED:  # else the expired record was purged as it was taken over
            return replayed


def _forget(key: str, endpoint: str) -> None:
    db.session.rollback()
    db.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.key == key, IdempotencyRecord.endpoint == endpoint
        )
    )
    db.session.commit()


def _replay(key: str, endpoint: str, digest: str):
    deadline = time.monotonic() + WAIT_SECONDS
    expired_seen = False
    while True:
        # Plain values, not an ORM object: reading an expired object's attributes would begin
        # a transaction again, and none may stay open while this waits (on SQLite every
        # transaction begins IMMEDIATE and would hold the write lock the first request needs).
        record = db.session.execute(
            select(
                IdempotencyRecord.request_hash,
                IdempotencyRecord.status_code,
                IdempotencyRecord.body,
                IdempotencyRecord.created_at,
            ).where(IdempotencyRecord.key == key, IdempotencyRecord.endpoint == endpoint)
        ).first()
        db.session.rollback()  # see the other transaction's commit on the next read
        if record is None and expired_seen:
            return _PURGED
        if record is None:
            return jsonify({"error": "retry", "detail": "The first request failed; retry."}), 409
        if expired(record.created_at, utcnow()):
            # A new request, whatever the old one asked (the purge has not reached it yet).
            # Not taken: another retry took it first, or the purge deleted it; read again.
            expired_seen = True
            if _take_over(key, endpoint, record, digest):
                return _TAKEN_OVER
        elif record.request_hash != digest:
            return jsonify(
                {
                    "errors": {
                        "Idempotency-Key": ["This key was used with a different request body."]
                    }
                }
            ), 422
        elif record.status_code != IN_PROGRESS:
            response = jsonify(record.body)
            response.status_code = record.status_code
            response.headers["Idempotent-Replayed"] = "true"
            return response
        elif utcnow() - record.created_at > ABANDONED_AFTER and _take_over(
            key, endpoint, record, digest
        ):
            return _TAKEN_OVER
        if time.monotonic() > deadline:
            detail = "A request with this Idempotency-Key is still being handled; retry shortly."
            return jsonify({"error": "in_progress", "detail": detail}), 409
        time.sleep(0.05)


def _take_over(key: str, endpoint: str, record: Row, digest: str) -> bool:
    """Claim a key for this retry to run: its first request died, or the key has expired.

    Most requests that died did so before their commit, and left nothing. One that died between
    its commit and storing the answer (a window of a few statements) did its work: running it
    again books nothing twice (the slot is taken, a 409), but an intake would be stored twice.
    Answering "in progress" for ever, which was the alternative, loses the patient's retry.
    An expired key starts afresh: this request's body, no answer, a new creation time.
    One retry wins the claim (the created time is compared and moved in one statement).
    """
    claimed = db.session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.key == key,
            IdempotencyRecord.endpoint == endpoint,
            IdempotencyRecord.status_code == record.status_code,
            IdempotencyRecord.created_at == record.created_at,
        )
        .values(created_at=utcnow(), request_hash=digest, status_code=IN_PROGRESS, body={})
    ).rowcount
    db.session.commit()
    return claimed == 1
