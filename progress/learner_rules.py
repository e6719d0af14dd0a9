"""Learner-wide derivations: learning paths, competencies and achievements.

Like the course roll-ups, each is a pure function of facts (the course summaries, external
evidence, activity days) and the catalogs; nothing is counted per event. Definitions:

- Learning path: a learner is on a path once enrolled in any of its courses. Percent and
  status follow its courses' completion; CurrentCourseID is the first course of the path not
  completed ("" once all are). A path that grows reopens.
- Competency level: the sum of the levels of its evidence (completed courses, quizzes and
  assignments that grant it, and external evidence), capped at 100. Status: mastered at
  ``MASTERY_LEVEL`` or more, in-progress above 0. AcquiredAt: when the level first reached
  mastery, in event time. CompetencyAcquired is published once per learner and competency.
- Achievement: awarded once per learner, at the event time its criterion was first met
  (docs/catalogs.md lists the criteria); its points count in UserProgress.TotalPoints.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import groupby

from progress.catalog import AchievementUpdated, CompetencyUpdated, Criterion, LearningPathUpdated
from progress.facts import earliest, latest
from progress.models import (
    CompetencyEvidence,
    CompetencyStatus,
    LearningPathProgress,
    UserAchievement,
    UserCompetency,
)
from progress.rollup import percent, status_of
from progress.schema import stable_id
from progress.state import (
    CompetencySummary,
    CourseSummary,
    EvidenceFact,
    LearnerState,
    PathSummary,
)
from progress.trusted import replaced

MASTERY_LEVEL = 80


@dataclass(frozen=True)
class Catalog:
    """The catalog entries a partition holds (deleted entries left out)."""

    learning_paths: dict[str, LearningPathUpdated] = field(default_factory=dict)
    competencies: dict[str, CompetencyUpdated] = field(default_factory=dict)
    achievements: dict[str, AchievementUpdated] = field(default_factory=dict)


def _enrolled(state: LearnerState) -> dict[str, CourseSummary]:
    return {cid: c.summary for cid, c in state.courses.items() if c.summary is not None}


# --------------------------------------------------------------------------- paths


def summarize_path(
    path: LearningPathUpdated, summaries: dict[str, CourseSummary], state: LearnerState
) -> PathSummary | None:
    on_path = [cid for cid in path.course_ids if cid in summaries]
    if not on_path:
        return None
    done = [c for c in path.course_ids if c in summaries and summaries[c].status == "completed"]
    total = len(path.course_ids)
    started: datetime | None = None
    last: datetime | None = None
    for cid in on_path:
        started = earliest(started, summaries[cid].started_at)
        last = latest(last, summaries[cid].last_activity_at)
    complete = total > 0 and len(done) == total
    done_at = [t for c in done if (t := summaries[c].completed_at) is not None]
    enrolled_at = [state.courses[cid].enrolled_at for cid in on_path]
    created_at = min(t for t in enrolled_at if t is not None)
    return PathSummary(
        status=status_of(len(done), total, started is not None),
        percent_complete=percent(len(done), total),
        total_courses=total,
        completed_courses=len(done),
        current_course_id=next((c for c in path.course_ids if c not in done), ""),
        started_at=started,
        completed_at=max(done_at, default=None) if complete else None,
        last_activity_at=last,
        created_at=created_at,
        updated_at=max(t for t in (last, path.updated_at, created_at) if t is not None),
    )


# --------------------------------------------------------------------------- competencies


def summarize_competency(
    competency_id: str, evidence: list[EvidenceFact], replaced: list[EvidenceFact]
) -> CompetencySummary:
    """The level from the evidence held now; AcquiredAt from its history (``replaced``: the
    older versions of external evidence, of any competency)."""
    ordered = sorted(evidence, key=lambda e: (e.at, e.type, e.reference_id))
    level = min(100, sum(fact.level for fact in ordered))
    status: CompetencyStatus = (
        "mastered" if level >= MASTERY_LEVEL else "in-progress" if level > 0 else "not-started"
    )
    return CompetencySummary(
        level=level,
        status=status,
        acquired_at=mastered_at(competency_id, [*ordered, *replaced]),
        evidence=tuple(ordered),
        created_at=ordered[0].at,
        updated_at=ordered[-1].at,
    )


def mastered_at(competency_id: str, versions: list[EvidenceFact]) -> datetime | None:
    """When the competency's level first reached mastery, in event time.

    At each instant, what holds is each piece of evidence's newest version held by then (a
    version is held from its time, or from ``known_at`` when a later structure made it
    count); the level is reached at the time of the fact that took their running sum, in event
    time, to mastery. The first instant at which the held levels add up to mastery decides
    (their running sum reaches it exactly when their total does). Without ``known_at`` this
    is simply the first time the levels held reached mastery.
    """
    held: dict[tuple[str, str], EvidenceFact] = {}
    level = 0
    ordered = sorted(versions, key=lambda f: f.held_from)
    for _, arriving in groupby(ordered, key=lambda f: f.held_from):
        for fact in arriving:
            older = held.get((fact.type, fact.reference_id))
            if older is not None and older.competency_id == competency_id:
                level -= older.level
            held[(fact.type, fact.reference_id)] = fact
            if fact.competency_id == competency_id:
                level += fact.level
        if level >= MASTERY_LEVEL:
            running = 0
            counted = (f for f in held.values() if f.competency_id == competency_id)
            for fact in sorted(counted, key=lambda f: f.at):
                running += fact.level
                if running >= MASTERY_LEVEL:
                    return fact.at
    return None


def competency_evidence(state: LearnerState) -> dict[str, list[EvidenceFact]]:
    by_competency: dict[str, list[EvidenceFact]] = {}
    for summary in _enrolled(state).values():
        for fact in summary.evidence:
            by_competency.setdefault(fact.competency_id, []).append(fact)
    for fact in state.external_evidence.values():
        by_competency.setdefault(fact.competency_id, []).append(fact)
    return by_competency


# --------------------------------------------------------------------------- achievements


def _nth(times: list[datetime], n: int) -> datetime | None:
    ordered = sorted(times)
    return ordered[n - 1] if len(ordered) >= n else None


def _streak_met_at(days: dict[str, datetime], length: int) -> datetime | None:
    """The first activity of the day that completed the first run of ``length`` days."""
    run = 0
    previous: date | None = None
    for day in sorted(days):
        current = date.fromisoformat(day)
        run = run + 1 if previous is not None and current - previous == timedelta(days=1) else 1
        previous = current
        if run >= length:
            return days[day]
    return None


def criterion_met_at(
    criterion: Criterion, state: LearnerState, paths: dict[str, PathSummary]
) -> datetime | None:
    summaries = _enrolled(state)
    # Completions as first announced: a course or path completed once meets the criterion
    # even if it grew since, as it would have for an achievement defined before it grew.
    completed = {
        cid: c.completion_announced_at
        for cid, c in state.courses.items()
        if c.completion_announced_at is not None
    }
    match criterion.kind:
        case "first-lesson":
            return state.lessons_reached[0] if state.lessons_reached else None
        case "lessons":
            reached = state.lessons_reached
            return reached[criterion.count - 1] if len(reached) >= criterion.count else None
        case "course-completed":
            if criterion.course_id is not None:
                return completed.get(criterion.course_id)
            return _nth([t for t in completed.values() if t], 1)
        case "courses":
            return _nth([t for t in completed.values() if t], criterion.count)
        case "perfect-quiz":
            return _nth([s.perfect_quiz_at for s in summaries.values() if s.perfect_quiz_at], 1)
        case "learning-path-completed":
            done = {
                **{pid: p.completed_at for pid, p in paths.items() if p.completed_at},
                **state.paths_completed,
            }
            if criterion.learning_path_id is not None:
                return done.get(criterion.learning_path_id)
            return _nth(list(done.values()), 1)
        case "streak":
            return _streak_met_at(state.activity_days, criterion.count)
    return None


# --------------------------------------------------------------------------- all at once


@dataclass(frozen=True)
class Awards:
    achievements: list[tuple[AchievementUpdated, datetime]]
    competencies: list[tuple[str, CompetencySummary, datetime]]  # with the time acquired


def derive_learner(
    state: LearnerState,
    catalog: Catalog,
    *,
    before: LearnerState | None = None,
    evidence_as_derived: bool = False,
) -> tuple[LearnerState, Awards]:
    """Re-derive paths and competencies, and award what is newly earned (once each).

    An award's time is the one first derived, as it would be had every fact arrived in
    order. ``before``: the learner before a late fact of its own (older than its newest);
    that fact moves an award time earlier where it dates the award earlier than without it.
    Nothing else moves one: not a structure or catalog change, even one that would date it
    earlier, since it came after the award.

    ``evidence_as_derived``: the caller knows the evidence (every course summary's, the
    external and the superseded) is what ``state.competencies`` was derived from, so they
    stand as they are (their derivation is a function of the evidence alone), and no
    competency can be newly acquired. Only without ``before``.
    """
    summaries = _enrolled(state)
    paths = {
        pid: summary
        for pid, path in sorted(catalog.learning_paths.items())
        if (summary := summarize_path(path, summaries, state)) is not None
    }
    if evidence_as_derived and before is None:
        competencies = state.competencies
    else:
        superseded = [fact for versions in state.superseded_evidence.values() for fact in versions]
        competencies = {
            cid: summarize_competency(cid, facts, superseded)
            for cid, facts in sorted(competency_evidence(state).items())
        }
    acquired = dict(state.competencies_acquired)
    new_competencies = []
    for cid, competency in competencies.items():
        if competency.acquired_at is None:
            continue
        if cid not in acquired:
            new_competencies.append((cid, competency, competency.acquired_at))
            acquired[cid] = competency.acquired_at
        elif before is not None and competency.acquired_at < acquired[cid]:
            then = before.competencies.get(cid)
            if _moved_back(competency.acquired_at, then.acquired_at if then else None):
                acquired[cid] = competency.acquired_at
    paths_completed = dict(state.paths_completed)  # the first completion stands
    for pid, path in paths.items():
        if path.completed_at is None:
            continue
        first = paths_completed.get(pid)
        if first is None:
            paths_completed[pid] = path.completed_at
        elif before is not None and path.completed_at < first:
            then_path = before.paths.get(pid)
            if _moved_back(path.completed_at, then_path.completed_at if then_path else None):
                paths_completed[pid] = path.completed_at
    with_paths = replaced(
        state,
        **{
            "paths": paths,
            "paths_completed": paths_completed,
            "lessons_reached": _lessons_reached(state, summaries, before),
        },
    )
    new_achievements = []
    earned = dict(state.achievements)
    for aid, achievement in sorted(catalog.achievements.items()):
        met_at = criterion_met_at(achievement.criteria, with_paths, paths)
        if met_at is None:
            continue
        if aid not in earned:
            new_achievements.append((achievement, met_at))
            earned[aid] = met_at
        elif before is not None and met_at < earned[aid]:
            then_met = criterion_met_at(achievement.criteria, before, before.paths)
            if _moved_back(met_at, then_met):
                earned[aid] = met_at
    derived = replaced(
        with_paths,
        **{
            "competencies": competencies,
            "competencies_acquired": acquired,
            "achievements": earned,
        },
    )
    return derived, Awards(new_achievements, new_competencies)


def _moved_back(now: datetime, then: datetime | None) -> bool:
    """Whether a late fact dates something earlier: ``now`` with it, ``then`` without it."""
    return then is None or now < then


def _lessons_reached(
    state: LearnerState, summaries: dict[str, CourseSummary], before: LearnerState | None
) -> tuple[datetime, ...]:
    """``LearnerState.lessons_reached`` after this derivation: a count reached for the first
    time is recorded at the n-th lesson's time; a late fact (``before``: the learner without
    it) may move a recorded one earlier, where it dates the n-th lesson earlier."""
    reached = state.lessons_reached
    if before is None:
        # Only counts reached for the first time are recorded: the times from the
        # len(reached)+1-th on, that is the largest ones, usually one or none.
        times = [t for s in summaries.values() for t in s.lesson_completions]
        new = len(times) - len(reached)
        return (*reached, *sorted(heapq.nlargest(new, times))) if new > 0 else reached
    counted = sorted(t for s in summaries.values() for t in s.lesson_completions)
    moved = list(reached)
    then: list[datetime] = []
    if any(at < reached[n] for n, at in enumerate(counted[: len(reached)])):
        then = sorted(t for s in _enrolled(before).values() for t in s.lesson_completions)
    for n, at in enumerate(counted):
        if n >= len(reached):
            moved.append(at)
        elif at < reached[n] and _moved_back(at, then[n] if n < len(then) else None):
            moved[n] = at
    return tuple(moved)


def achievement_points(state: LearnerState, catalog: Catalog) -> int:
    return sum(
        catalog.achievements[aid].points
        for aid in state.achievements
        if aid in catalog.achievements
    )


# --------------------------------------------------------------------------- rows


def path_rows(state: LearnerState, only: list[str] | None = None) -> list[LearningPathProgress]:
    """The rows of the learner's paths (``only``: of these)."""
    paths = state.paths if only is None else {pid: state.paths[pid] for pid in only}
    return [
        LearningPathProgress(
            id=stable_id("learning_path_progress", state.user_id, pid),
            user_id=state.user_id,
            version=state.version,
            learning_path_id=pid,
            **p.model_dump(),
        )
        for pid, p in sorted(paths.items())
    ]


def competency_rows(state: LearnerState, only: list[str] | None = None) -> list[UserCompetency]:
    """The rows of the learner's competencies, with their evidence (``only``: of these)."""
    held = state.competencies
    rows = []
    for cid, c in sorted(held.items() if only is None else ((k, held[k]) for k in only)):
        row_id = stable_id("user_competency", state.user_id, cid)
        evidence = [
            CompetencyEvidence(
                id=stable_id("competency_evidence", state.user_id, cid, e.type, e.reference_id),
                user_id=state.user_id,
                version=state.version,
                user_competency_id=row_id,
                type=e.type,
                reference_id=e.reference_id,
                description=e.description,
                url=e.url,
                created_at=e.at,
                updated_at=e.at,
            )
            for e in c.evidence
        ]
        rows.append(
            UserCompetency(
                id=row_id,
                user_id=state.user_id,
                version=state.version,
                competency_id=cid,
                level=c.level,
                status=c.status,
                evidence=evidence,
                # Once acquired, always: a later loss of evidence does not undo the history.
                acquired_at=state.competencies_acquired.get(cid),
                created_at=c.created_at,
                updated_at=c.updated_at,
            )
        )
    return rows


def achievement_rows(state: LearnerState, only: list[str] | None = None) -> list[UserAchievement]:
    """The rows of the learner's achievements (``only``: of these)."""
    earned = state.achievements
    return [
        UserAchievement(
            id=stable_id("user_achievement", state.user_id, aid),
            user_id=state.user_id,
            version=state.version,
            achievement_id=aid,
            earned_at=at,
            created_at=at,
            updated_at=at,
        )
        for aid, at in sorted(earned.items() if only is None else ((k, earned[k]) for k in only))
    ]


@dataclass(frozen=True)
class LearnerWideRows:
    """The learner-wide rows to send. ``whole``: the paths, competencies and evidence are
    all there, so the sink removes the learner's older rows of them; else only those that
    changed are, and no row of them was removed."""

    paths: list[LearningPathProgress]
    competencies: list[UserCompetency]
    achievements: list[UserAchievement]
    whole: bool


def learner_wide_rows(state: LearnerState, original: LearnerState | None) -> LearnerWideRows:
    """The learner-wide rows of ``state``: those that differ from ``original``'s (the state
    before the event), or all of them (``original`` None, or a row removed since)."""
    if original is None or _removed_any(original, state):
        return LearnerWideRows(
            path_rows(state), competency_rows(state), achievement_rows(state), whole=True
        )
    paths = [pid for pid, p in state.paths.items() if original.paths.get(pid) != p]
    competencies = [
        cid
        for cid, c in state.competencies.items()
        if original.competencies.get(cid) != c
        or original.competencies_acquired.get(cid) != state.competencies_acquired.get(cid)
    ]
    achievements = [
        aid for aid, at in state.achievements.items() if original.achievements.get(aid) != at
    ]
    return LearnerWideRows(
        path_rows(state, paths) if paths else [],
        competency_rows(state, competencies) if competencies else [],
        achievement_rows(state, achievements) if achievements else [],
        whole=False,
    )


def _removed_any(original: LearnerState, state: LearnerState) -> bool:
    """Whether a path, competency or piece of evidence of ``original`` is gone in ``state``."""
    if original.paths.keys() - state.paths.keys():
        return True
    for cid, then in original.competencies.items():
        now = state.competencies.get(cid)
        if now is None:
            return True
        if now is not then and now.evidence != then.evidence:
            kept = {(e.type, e.reference_id) for e in now.evidence}
            if any((e.type, e.reference_id) not in kept for e in then.evidence):
                return True
    return False
