"""Tracking for grasping: the same object keeps its id across frames, and its pose stops jittering.

Why: a grasp planner needs ``cat_3`` to stay the same cat from one frame to the next and
a pose that does not shake by a centimetre; per-frame detections give neither (they are
numbered by confidence, and each frame's PnP has its own noise). Runs after the
``Estimator``, on its ``Detection`` objects; no ROS here, so it is tested and timed alone.

Per frame, for each class:

1. **Predict** every track to the frame's stamp with its constant-velocity model.
2. **Symmetry**: every detection is replaced by its symmetric equivalent closest to the
   track's predicted rotation (``geometry.symmetry.closest_equivalent``), so that the
   filter never averages a pose with its half-turned twin.
3. **Associate** by cost = translation distance + ``rotation_weight`` × rotation angle,
   with the Hungarian method (``scipy.optimize.linear_sum_assignment``); pairs farther
   apart than ``max_distance`` never match. Confirmed tracks choose first, then the
   tentative ones; a detection left over starts a tentative track.
4. **Filter** each matched track on SE(3): an alpha-beta (steady-state constant-velocity
   Kalman) filter on translation, and the same on rotation in its tangent space, which
   is a slerp from the predicted rotation toward the measured one by ``pose_gain``
   (``scipy.spatial.transform.Rotation``). A measurement farther than ``jump_distance``
   or ``jump_angle_deg`` from the prediction is held back once: the track coasts on its
   prediction, and the next measurement decides (near the held one: the object did move,
   the filter restarts there; near the prediction: it was an outlier).
5. **Lifecycle**: a tentative track is confirmed, and given the next id of its class,
   after ``min_hits`` consecutive hits (a miss before that ends it); a confirmed track
   dies after ``max_misses`` consecutive misses, so a short occlusion keeps its id.

The constant-velocity model is why this filter beats an exponential or one-euro filter on
moving objects: those lag behind a moving pose by velocity × time constant, this one
does not lag on steady motion, and on a still object it smooths as well. Frames are
batched: one scipy call per step for all tracks (10 tracks: well under a millisecond).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

from hrpose_ros.geometry.symmetry import closest_equivalent
from hrpose_ros.runtime.estimator import Detection

__all__ = ["Track", "Tracker", "TrackerError", "TrackerParams"]

_MIN_DT_S = 1e-6


class TrackerError(ValueError):
    """A tracker parameter is out of its range (the message names it)."""


@dataclass(frozen=True)
class TrackerParams:
    """Tracker settings; the node's ``tracking_<name>`` parameters (docs: ``ros/node_params.py``)."""

    min_hits: int = 3
    max_misses: int = 10
    max_distance: float = 0.1
    rotation_weight: float = 0.05
    pose_gain: float = 0.3
    velocity_gain: float = 0.03
    jump_distance: float = 0.05
    jump_angle_deg: float = 30.0

    def __post_init__(self) -> None:
        checks = {
            "min_hits": self.min_hits >= 1,
            "max_misses": self.max_misses >= 1,
            "max_distance": self.max_distance > 0,
            "rotation_weight": self.rotation_weight >= 0,
            "pose_gain": 0 < self.pose_gain <= 1,
            "velocity_gain": 0 <= self.velocity_gain <= 1,
            "jump_distance": self.jump_distance > 0,
            "jump_angle_deg": 0 < self.jump_angle_deg <= 180,
        }
        for name, ok in checks.items():
            if not ok:
                raise TrackerError(f"tracker parameter {name} = {getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class Track:
    """A confirmed track after this frame: its id, its filtered pose, and the detection it took.

    ``R`` (3, 3), ``t`` (3,) metres, camera optical frame (``x_cam = R @ x_obj + t``);
    ``confidence`` the detections' confidence, smoothed; ``held`` True when this frame's
    detection was held back as a jump (the pose is the prediction).
    """

    class_name: str
    track_id: int
    R: np.ndarray
    t: np.ndarray
    confidence: float
    hits: int
    held: bool
    detection: Detection

    def as_detection(self) -> Detection:
        """The detection with the filtered pose, and the track id as its ``instance``.

        So the message builders that name frames ``<class>_<instance>`` name this one
        ``<class>_<track id>``.
        """
        return dataclasses.replace(
            self.detection, R=self.R, t=self.t, instance=self.track_id, confidence=self.confidence
        )


@dataclass
class _State:
    """One track's filter state: pose, velocities, counters, and a held-back jump."""

    class_name: str
    t: np.ndarray
    R: np.ndarray
    stamp_s: float
    confidence: float
    v: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    w: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3))
    """Angular velocity, rad/s, in the object frame (``R(t + dt) = R exp(w dt)``)."""
    track_id: int | None = None
    hits: int = 1
    misses: int = 0
    pending: tuple[np.ndarray, np.ndarray] | None = None
    """A held-back jump: (t, R) of that measurement."""


@dataclass
class _Frame:
    """One frame's detections as arrays, and every track's prediction to its stamp."""

    R: np.ndarray  # (D, 3, 3) detections
    t: np.ndarray  # (D, 3)
    pred_mat: np.ndarray  # (T, 3, 3) tracks' predicted rotations
    pred_t: np.ndarray  # (T, 3)
    dt: np.ndarray  # (T,) seconds since each track's last update


@dataclass(frozen=True)
class _Match:
    track: int
    detection: int
    R: np.ndarray
    """The detection's rotation, as the equivalent closest to the track's prediction."""
    t: np.ndarray


class Tracker:
    """Stable ids and filtered poses over a stream of per-frame detections (one camera).

    Args:
        params: the settings; ``params`` can be replaced between frames (live changes).
        symmetries: class name -> (4, 4) symmetry transforms (``geometry.symmetry``);
            classes not named have none.
    """

    def __init__(
        self,
        params: TrackerParams | None = None,
        symmetries: Mapping[str, Sequence[np.ndarray]] | None = None,
    ) -> None:
        self.params = params if params is not None else TrackerParams()
        self.symmetries = {k: tuple(v) for k, v in (symmetries or {}).items()}
        self._tracks: list[_State] = []
        self._next_id: dict[str, int] = {}

    def reset(self) -> None:
        """Forget every track (ids start again from 0)."""
        self._tracks = []
        self._next_id = {}

    @property
    def num_tracks(self) -> int:
        """Tracks alive now, tentative ones included."""
        return len(self._tracks)

    def update(self, detections: Sequence[Detection], stamp_s: float) -> list[Track]:
        """Take one frame's detections; return the confirmed tracks it updated.

        Args:
            detections: the ``Estimator``'s output for the frame (any order).
            stamp_s: the frame's time in seconds (increasing; the filter's time step).

        Returns:
            Tracks sorted by class index, then smoothed confidence (best first), then id.
        """
        frame = self._predict(detections, stamp_s)
        matches = self._associate(detections, frame)
        held = self._filter(matches, detections, frame, stamp_s)
        matched = {m.track: m.detection for m in matches}
        for i, state in enumerate(self._tracks):
            state.hits, state.misses = (state.hits + 1, 0) if i in matched else (state.hits, state.misses + 1)
        out = [self._output(self._tracks[i], detections[j], i in held) for i, j in matched.items()]
        kept = [s for i, s in enumerate(self._tracks) if i in matched or self._lives_on(s)]
        taken = set(matched.values())
        born = self._birth([d for j, d in enumerate(detections) if j not in taken], stamp_s)
        self._tracks = kept + [state for state, _ in born]
        out += [self._output(state, det, False) for state, det in born]
        tracks = [trk for trk in out if trk is not None]
        tracks.sort(key=lambda trk: (trk.detection.class_index, -trk.confidence, trk.track_id))
        return tracks

    # ------------------------------------------------------------------ steps

    def _predict(self, detections: Sequence[Detection], stamp_s: float) -> _Frame:
        """Detections as arrays; every track moved to ``stamp_s`` by its velocities."""
        R = np.array([d.R for d in detections], dtype=np.float64).reshape(-1, 3, 3)
        t = np.array([d.t for d in detections], dtype=np.float64).reshape(-1, 3)
        if not self._tracks:
            return _Frame(R, t, np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0))
        dt = np.maximum(stamp_s - np.array([s.stamp_s for s in self._tracks]), _MIN_DT_S)
        w = np.array([s.w for s in self._tracks])
        turn = Rotation.from_rotvec(w * dt[:, None]).as_matrix()  # R(t + dt) = R exp(w dt)
        pred_mat = np.array([s.R for s in self._tracks]) @ turn
        v = np.array([s.v for s in self._tracks])
        pred_t = np.array([s.t for s in self._tracks]) + v * dt[:, None]
        return _Frame(R, t, pred_mat, pred_t, dt)

    def _associate(self, detections: Sequence[Detection], frame: _Frame) -> list[_Match]:
        """Hungarian assignment of detections to tracks of their class: confirmed tracks first.

        One cost matrix for every track and detection (pairs of two classes, or farther
        apart than ``max_distance``, are forbidden), so all classes are solved at once.
        """
        if not self._tracks or not detections:
            return []
        params = self.params
        det_class = np.array([d.class_name for d in detections])
        trk_class = np.array([s.class_name for s in self._tracks])
        R_eq = np.broadcast_to(frame.R[None], (len(trk_class), *frame.R.shape))
        t_eq = np.broadcast_to(frame.t[None], (len(trk_class), *frame.t.shape))
        for name, symmetries in self.symmetries.items():
            rows, cols = np.flatnonzero(trk_class == name), np.flatnonzero(det_class == name)
            if symmetries and len(rows) and len(cols):
                if not R_eq.flags.writeable:
                    R_eq, t_eq = R_eq.copy(), t_eq.copy()
                block = np.ix_(rows, cols)
                R_eq[block], t_eq[block] = closest_equivalent(
                    frame.R[None, cols], frame.t[None, cols], symmetries, frame.pred_mat[rows, None]
                )
        offset = t_eq - frame.pred_t[:, None]
        dist = np.sqrt(np.einsum("tdi,tdi->td", offset, offset))
        cost = dist + params.rotation_weight * _angle(frame.pred_mat[:, None], R_eq)
        allowed = (trk_class[:, None] == det_class[None, :]) & (dist <= params.max_distance)
        confirmed = np.array([s.track_id is not None for s in self._tracks])
        out: list[_Match] = []
        free = np.ones(len(detections), dtype=bool)
        for rows in (np.flatnonzero(confirmed), np.flatnonzero(~confirmed)):
            cols = np.flatnonzero(free)
            if not len(rows) or not len(cols):
                continue
            ok = allowed[np.ix_(rows, cols)]
            r, c = linear_sum_assignment(np.where(ok, cost[np.ix_(rows, cols)], _FORBIDDEN))
            keep = ok[r, c]
            for i, j in zip(rows[r[keep]].tolist(), cols[c[keep]].tolist(), strict=True):
                out.append(_Match(i, j, R_eq[i, j], t_eq[i, j]))
                free[j] = False
        return out

    def _filter(
        self, matches: list[_Match], detections: Sequence[Detection], frame: _Frame, stamp_s: float
    ) -> set[int]:
        """Alpha-beta update of every matched track (one batch); returns the tracks held back."""
        if not matches:
            return set()
        params = self.params
        ti = np.array([m.track for m in matches])
        zR = np.array([m.R for m in matches])
        zt = np.array([m.t for m in matches])
        pred, pred_t, dt = frame.pred_mat[ti], frame.pred_t[ti], frame.dt[ti][:, None]
        residual_t = zt - pred_t
        # log(R_pred^T R_z); a product of rotation matrices needs no re-orthogonalisation
        residual_r = Rotation.from_matrix(np.swapaxes(pred, 1, 2) @ zR, assume_valid=True).as_rotvec()
        jump = (np.linalg.norm(residual_t, axis=1) > params.jump_distance) | (
            np.linalg.norm(residual_r, axis=1) > math.radians(params.jump_angle_deg)
        )
        gain = np.where(jump[:, None], 0.0, params.pose_gain)  # a held measurement moves nothing
        new_R = pred @ Rotation.from_rotvec(gain * residual_r).as_matrix()  # slerp toward R_z by the gain
        new_t = pred_t + gain * residual_t
        step_v = params.velocity_gain / dt * residual_t
        step_w = params.velocity_gain / dt * residual_r
        measured = np.array([float(detections[m.detection].confidence) for m in matches])
        before = np.array([self._tracks[m.track].confidence for m in matches])
        confidence = (before + params.pose_gain * (measured - before)).tolist()
        held: set[int] = set()
        for k, m in enumerate(matches):
            state = self._tracks[m.track]
            state.stamp_s, state.confidence = stamp_s, confidence[k]
            if not jump[k]:
                state.t, state.R, state.pending = new_t[k], new_R[k], None
                state.v, state.w = state.v + step_v[k], state.w + step_w[k]
            elif state.pending is not None and _near(state.pending, zt[k], zR[k], params):
                # the second jump in a row to the same place: the object did move; restart there
                state.t, state.R = zt[k], zR[k]
                state.v, state.w, state.pending = np.zeros(3), np.zeros(3), None
            else:  # hold it back once: coast on the prediction
                state.t, state.R, state.pending = new_t[k], new_R[k], (zt[k], zR[k])
                held.add(m.track)
        return held

    def _lives_on(self, state: _State) -> bool:
        """An unmatched track survives: confirmed, and fewer than ``max_misses`` misses in a row."""
        return state.track_id is not None and state.misses < self.params.max_misses

    def _birth(self, detections: list[Detection], stamp_s: float) -> list[tuple[_State, Detection]]:
        """A tentative track per detection no track took."""
        if not detections:
            return []
        R = np.array([d.R for d in detections], dtype=np.float64).reshape(-1, 3, 3)
        t = np.array([d.t for d in detections], dtype=np.float64).reshape(-1, 3)
        return [
            (_State(d.class_name, t[k], R[k], stamp_s, float(d.confidence)), d)
            for k, d in enumerate(detections)
        ]

    def _output(self, state: _State, detection: Detection, held: bool) -> Track | None:
        """The track as output once it has ``min_hits`` hits (its id is given then); else None."""
        if state.track_id is None:
            if state.hits < self.params.min_hits:
                return None
            state.track_id = self._next_id.get(state.class_name, 0)
            self._next_id[state.class_name] = state.track_id + 1
        return Track(
            state.class_name, state.track_id, state.R, state.t, state.confidence, state.hits, held, detection
        )


_FORBIDDEN = 1e9
"""Cost of a pair beyond the association gate (never chosen over an allowed one)."""


def _angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) between rotation matrices, batched over the leading axes."""
    cos = (np.einsum("...ij,...ij->...", Ra, Rb) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _near(
    pending: tuple[np.ndarray, np.ndarray], t: np.ndarray, R: np.ndarray, params: TrackerParams
) -> bool:
    """The new measurement is within the jump gate of the held one."""
    return bool(
        np.linalg.norm(t - pending[0]) <= params.jump_distance
        and _angle(pending[1], R) <= math.radians(params.jump_angle_deg)
    )
