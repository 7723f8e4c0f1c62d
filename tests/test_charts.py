"""The outcome chart maths: pure functions, no database."""

from datetime import date

import pytest

from clinic.staff import charts

BASELINE_DAY = date(2026, 9, 1)
PROCEDURE_DAY = date(2026, 9, 20)


def test_scale_is_linear_and_clamped():
    assert charts.scale(0, 0, 10, 100, 0) == 100
    assert charts.scale(10, 0, 10, 100, 0) == 0
    assert charts.scale(2.5, 0, 10, 100, 0) == 75
    assert charts.scale(-3, 0, 10, 100, 0) == 100  # below the domain: on the axis
    assert charts.scale(42, 0, 10, 100, 0) == 0
    assert charts.scale(5, 3, 3, 0, 10) == 5  # an empty domain: the middle


def test_number_takes_only_real_numbers():
    assert charts.number(3) == 3.0 and charts.number(2.5) == 2.5
    for junk in (None, "4", True, False, float("nan"), [1]):
        assert charts.number(junk) is None


def test_nice_ceiling_and_ticks():
    assert charts.nice_ceiling(0) == 30
    assert charts.nice_ceiling(45) == 60
    assert charts.nice_ceiling(240) == 240
    assert charts.nice_ceiling(999) == 240
    assert charts.value_ticks(10) == [0, 2, 4, 6, 8, 10]


def test_time_span_widens_a_single_day():
    assert charts.time_span([date(2026, 1, 10)]) == (date(2026, 1, 7), date(2026, 1, 14))
    assert charts.time_span([date(2026, 3, 1), date(2026, 1, 1)]) == (
        date(2026, 1, 1),
        date(2026, 3, 1),
    )
    with pytest.raises(ValueError):
        charts.time_span([])


def test_date_ticks_cover_the_span_without_repeats():
    ticks = charts.date_ticks(date(2026, 1, 1), date(2026, 1, 3))
    assert ticks[0] == date(2026, 1, 1) and ticks[-1] == date(2026, 1, 3)
    assert len(ticks) == len(set(ticks))
    assert charts.date_label(date(2026, 5, 4), date(2026, 1, 1), date(2026, 3, 1)) == "May 4"
    assert charts.date_label(date(2026, 5, 4), date(2026, 1, 1), date(2027, 3, 1)) == "May 2026"


def test_delta_text():
    assert charts.delta(4, 7) == "\u22123"
    assert charts.delta(9, 6) == "+3"
    assert charts.delta(5, 5) == "0"
    assert charts.delta(2.5, 1) == "+1.5"
    assert charts.delta(None, 5) == "" and charts.delta(5, None) == ""


def observations():
    return [
        charts.Observation(
            date(2026, 11, 1), {"nprs_back": 3, "nprs_leg": 2, "walk_minutes": 30}, "6 weeks"
        ),
        charts.Observation(date(2026, 9, 21), {"nprs_back": 5, "nprs_leg": None}, "Day 1"),
    ]


def test_pain_panel_points_against_the_baseline():
    panels = charts.outcome_panels(
        {"nprs_back": 6, "nprs_leg": 8, "walk_minutes": 5},
        BASELINE_DAY,
        observations(),
        [PROCEDURE_DAY],
        today=date(2026, 11, 24),
    )
    assert [p.id for p in panels] == ["pain", "odi", "walking"]
    pain = panels[0]
    back, leg = pain.lines
    # the baseline first, then the check-ins in date order
    assert [(p.day, p.value) for p in back.points] == [
        (BASELINE_DAY, 6),
        (date(2026, 9, 21), 5),
        (date(2026, 11, 1), 3),
    ]
    assert [p.value for p in leg.points] == [8, 2]  # the missing leg score is left out
    # x: the baseline day sits on the left edge, the last check-in on the right edge
    assert back.points[0].x == pain.left and back.points[-1].x == pain.right
    xs = [p.x for p in back.points]
    assert xs == sorted(xs)
    # y: 0 is the bottom, 10 the top; 6 sits 60 % of the way up
    height = pain.bottom - pain.top
    assert back.points[0].y == pytest.approx(pain.bottom - 0.6 * height)
    assert back.baseline_y == back.points[0].y
    assert pain.y_ticks[0].label == "0" and pain.y_ticks[-1].label == "10"
    assert pain.y_ticks[-1].position == pain.top
    assert len(pain.markers) == 1 and pain.left < pain.markers[0].position < pain.right
    assert back.polyline.count(",") == 3
    assert (back.colour, back.shape) != (leg.colour, leg.shape)
    assert back.dash != leg.dash  # told apart without colour too


def test_panels_without_data_are_empty_and_minutes_fit_the_data():
    panels = charts.outcome_panels(
        {"walk_minutes": 5}, BASELINE_DAY, observations(), [], today=date(2026, 11, 24)
    )
    odi = panels[1]
    assert odi.empty and odi.maximum == 100
    walking = panels[2]
    assert walking.maximum == 30  # 5 and 30 minutes fit a 0-30 scale
    walk, stand = walking.lines
    assert walk.points[-1].y == walking.top and not stand.points and stand.baseline is None


def test_no_data_at_all_still_draws_an_axis_around_today():
    panels = charts.outcome_panels({}, None, [], [], today=date(2026, 11, 24))
    assert all(p.empty for p in panels)
    assert panels[0].x_ticks[0].label == "Nov 21"


def test_values_out_of_range_stay_inside_the_plot():
    panel = charts.outcome_panels(
        {"nprs_back": 14}, BASELINE_DAY, [], [], today=date(2026, 11, 24)
    )[0]
    assert panel.lines[0].points[0].y == panel.top
