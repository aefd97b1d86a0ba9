"""Headless OpenGL renderer (moderngl on EGL) for synthetic training images.

Why OpenGL and not a home-made rasteriser: the same code runs on Mesa llvmpipe (CPU)
and on the NVIDIA driver, it handles any mesh size, and occlusion comes from a real
depth test. One pass renders colour, a per-instance id and camera-frame depth into
three attachments (multiple render targets).

Camera convention: OpenCV (x right, y down, z forward), intrinsics ``K`` (3, 3) in
pixels with the centre of pixel (i, j) at x = j, y = i (docs/architecture.md). The GL
projection built by :func:`gl_projection` maps that convention onto GL's clip space so
that GL's pixel-centre sampling lands exactly on OpenCV pixel centres; it maps image row
v to increasing GL y, so the rows read back from the framebuffer (bottom first) come out
in image order without a flip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_POINT_LIGHTS",
    "Light",
    "PointLight",
    "RenderError",
    "RenderItem",
    "RenderMesh",
    "RenderOutput",
    "Renderer",
    "gl_projection",
    "load_render_mesh",
    "mesh_from_trimesh",
    "random_light",
]

_LOG = logging.getLogger(__name__)
_MAX_ITEMS = 255  # instance ids live in the 8-bit alpha channel
MAX_POINT_LIGHTS = 4  # size of the shader's lamp arrays


class RenderError(ValueError):
    """Bad input to the renderer (mesh, pose, intrinsics or image size)."""


@dataclass(frozen=True)
class RenderMesh:
    """A triangle mesh ready for upload, in the object frame, metres.

    Attributes:
        vertices: (N, 3) float32 positions, metres.
        faces: (F, 3) uint32 vertex indices.
        normals: (N, 3) float32 unit vertex normals.
        colors: (N, 3) float32 albedo in 0..1 (ignored where a texture is given).
        uv: (N, 2) float32 texture coordinates (OBJ convention, v up) or None.
        texture: (h, w, 3) uint8 RGB texture image (row 0 = top) or None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None

    def bounds(self) -> np.ndarray:
        """(2, 3) array: min and max corner of the vertices, metres."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)]).astype(np.float64)


@dataclass(frozen=True)
class PointLight:
    """A lamp near the scene, in the camera frame.

    Why: a directional light shades every object alike and each flat face evenly. A lamp
    at a finite distance lights near faces and near objects more than far ones, so the
    shading across one object changes as it does under room lights.

    Attributes:
        position: (3,) lamp position, camera frame, metres.
        color: (3,) RGB colour times intensity, as seen from very close.
        reach_m: distance at which the lamp gives half its strength: the strength at
            distance d is ``color * reach_m**2 / (reach_m**2 + d**2)``.
    """

    position: tuple[float, float, float]
    color: tuple[float, float, float]
    reach_m: float = 0.5


@dataclass(frozen=True)
class Light:
    """One directional light plus ambient, in the camera frame, and optional lamps.

    Attributes:
        direction: (3,) unit vector from the surface toward the light, camera frame.
        color: (3,) RGB light colour times intensity (may exceed 1).
        ambient: (3,) RGB ambient term (the sky's, with ``ground_ambient``).
        specular: strength of the Phong highlight (0 = matte).
        shininess: Phong exponent.
        points: up to ``MAX_POINT_LIGHTS`` lamps (:class:`PointLight`).
        ground_ambient: (3,) RGB ambient of faces turned away from ``sky``; None gives
            every face ``ambient``. Hemisphere ambient: a face's ambient is
            ``mix(ground_ambient, ambient, (1 + n . sky) / 2)``, so the sides that no
            light reaches can be dark, as under one strong lamp in a dim room.
        sky: (3,) unit vector toward the bright half of the surroundings, camera frame.
    """

    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    ambient: tuple[float, float, float] = (0.35, 0.35, 0.35)
    specular: float = 0.1
    shininess: float = 16.0
    points: tuple[PointLight, ...] = ()
    ground_ambient: tuple[float, float, float] | None = None
    sky: tuple[float, float, float] = (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class RenderItem:
    """One mesh instance to draw: which mesh, its pose, and its colour gain.

    Attributes:
        mesh_key: key given to :meth:`Renderer.add_mesh`.
        R: (3, 3) rotation object -> camera.
        t: (3,) translation object -> camera, metres.
        color_gain: (3,) RGB multiplier of the albedo (colour/texture jitter).
    """

    mesh_key: str
    R: np.ndarray
    t: np.ndarray
    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class RenderOutput:
    """What one render call returns.

    Attributes:
        rgb: (H, W, 3) uint8 RGB; background pixels are 0.
        instance: (H, W) int32; 0 = background, i + 1 = the i-th item drawn.
        depth: (H, W) float32 camera-frame z in metres; 0 = background.
    """

    rgb: np.ndarray
    instance: np.ndarray
    depth: np.ndarray
    extras: dict = field(default_factory=dict)


_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 model_view;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    v_pos = (model_view * vec4(in_pos, 1.0)).xyz;
    v_normal = mat3(model_view) * in_normal;
    v_color = in_color;
    v_uv = in_uv;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_FRAGMENT_SHADER = (
    f"#version 330\n#define MAX_POINT_LIGHTS {MAX_POINT_LIGHTS}\n"
    + """
uniform vec3 light_dir;
uniform vec3 light_color;
uniform vec3 ambient;
uniform bool hemisphere;
uniform vec3 ground_ambient;
uniform vec3 sky;
uniform int n_points;
uniform vec3 point_pos[MAX_POINT_LIGHTS];
uniform vec3 point_color[MAX_POINT_LIGHTS];
uniform float point_reach2[MAX_POINT_LIGHTS];
uniform float specular;
uniform float shininess;
uniform vec3 color_gain;
uniform bool use_texture;
uniform sampler2D tex;
uniform float instance_id;  // 1..255, written to alpha as id / 255 (exact in 8-bit UNORM)
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
in vec2 v_uv;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;
void main() {
    vec3 view = normalize(-v_pos);
    vec3 n = normalize(v_normal);
    if (dot(n, view) < 0.0) n = -n;
    vec3 albedo = use_texture ? texture(tex, v_uv).rgb : v_color;
    albedo = clamp(albedo * color_gain, 0.0, 1.0);
    vec3 l = normalize(light_dir);
    float diffuse = max(dot(n, l), 0.0);
    float spec = pow(max(dot(reflect(-l, n), view), 0.0), shininess);
    vec3 amb = hemisphere ? mix(ground_ambient, ambient, 0.5 + 0.5 * dot(n, sky)) : ambient;
    vec3 c = albedo * (amb + diffuse * light_color) + specular * spec * light_color;
    for (int i = 0; i < n_points; ++i) {
        vec3 to_lamp = point_pos[i] - v_pos;
        float d2 = dot(to_lamp, to_lamp);
        vec3 lamp = point_color[i] * (point_reach2[i] / (point_reach2[i] + d2));
        vec3 lp = to_lamp * inversesqrt(d2);
        float lamp_spec = pow(max(dot(reflect(-lp, n), view), 0.0), shininess);
        c += albedo * max(dot(n, lp), 0.0) * lamp + specular * lamp_spec * lamp;
    }
    f_color = vec4(clamp(c, 0.0, 1.0), instance_id / 255.0);
    f_depth = v_pos.z;
}
"""
)


def gl_projection(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL projection matrix equivalent to the OpenCV pinhole ``K``.

    With ``u = fx x/z + s y/z + cx`` (OpenCV pixels, centre of pixel j at u = j), GL
    places the centre of framebuffer column j at NDC ``2 (j + 0.5) / W - 1``; so
    ``x_ndc = 2 (u + 0.5) / W - 1``. Rows use ``y_ndc = 2 (v + 0.5) / H - 1`` (v down
    maps to GL y up), which makes framebuffer row r (counted from the bottom, the order
    glReadPixels returns) hold image row v = r.

    Args:
        K: (3, 3) intrinsics, pixels.
        width, height: image size, pixels.
        near, far: clip distances, metres (0 < near < far).

    Returns:
        (4, 4) float64 matrix acting on camera-frame column vectors (x, y, z, 1).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise RenderError(f"K must be a finite (3, 3) intrinsics matrix with fx, fy > 0, got {K!r}")
    if not 0 < near < far:
        raise RenderError(f"need 0 < near < far, got near={near}, far={far}")
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * fx / width
    P[0, 1] = 2.0 * s / width
    P[0, 2] = 2.0 * (cx + 0.5) / width - 1.0
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = 2.0 * (cy + 0.5) / height - 1.0
    P[2, 2] = (far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = 1.0
    return P


def mesh_from_trimesh(
    mesh, scale: float = 1.0, default_color=(0.7, 0.7, 0.7), max_faces: int | None = None
) -> RenderMesh:
    """Convert a ``trimesh.Trimesh`` into a :class:`RenderMesh`.

    Keeps UV textures (``TextureVisuals`` with an image) or vertex/face colours; face
    colours are turned into vertex colours by un-sharing vertices.

    Args:
        mesh: a trimesh.Trimesh.
        scale: multiplier taking the file's units to metres (0.001 for millimetres).
        default_color: RGB 0..1 used when the mesh has no colour.
        max_faces: decimate vertex-coloured/plain meshes above this many faces (quadric
            decimation; colours moved over from the nearest original vertex). llvmpipe's
            cost is mostly per vertex, so this is the main speed knob for dense scans.
    """
    import trimesh  # noqa: PLC0415 - heavy, only needed when loading meshes

    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise RenderError(f"expected a non-empty trimesh.Trimesh, got {type(mesh).__name__}")
    visual = mesh.visual
    uv = texture = None
    if visual.kind == "texture" and getattr(visual, "uv", None) is not None:
        image = getattr(visual.material, "image", None)
        if image is None and hasattr(visual.material, "baseColorTexture"):
            image = visual.material.baseColorTexture
        if image is not None:
            uv = np.asarray(visual.uv, dtype=np.float32)
            texture = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if texture is None and visual.kind == "face":
        face_colors = np.asarray(visual.face_colors)
        mesh = mesh.copy()
        mesh.unmerge_vertices()  # one vertex per face corner, so each face keeps its colour
        vertex_colors = np.zeros((len(mesh.vertices), 4), np.uint8)
        vertex_colors[mesh.faces.reshape(-1)] = np.repeat(face_colors, 3, axis=0)
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=vertex_colors)
        visual = mesh.visual
    if texture is None and max_faces is not None and len(mesh.faces) > max_faces:
        mesh = _decimate(mesh, max_faces)
        visual = mesh.visual
    n = len(mesh.vertices)
    if texture is None and visual.kind == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
    else:
        colors = np.tile(np.asarray(default_color, dtype=np.float32), (n, 1))
    return RenderMesh(
        vertices=(np.asarray(mesh.vertices, dtype=np.float64) * scale).astype(np.float32),
        faces=np.asarray(mesh.faces, dtype=np.uint32),
        normals=np.asarray(mesh.vertex_normals, dtype=np.float32),
        colors=colors,
        uv=uv,
        texture=texture,
    )


def _decimate(mesh, max_faces: int):
    """Quadric decimation keeping vertex colours (nearest original vertex)."""
    import trimesh  # noqa: PLC0415
    from scipy.spatial import cKDTree  # noqa: PLC0415

    small = mesh.simplify_quadric_decimation(face_count=int(max_faces))
    if mesh.visual.kind == "vertex":
        _, nearest = cKDTree(mesh.vertices).query(small.vertices)
        colors = np.asarray(mesh.visual.vertex_colors)[nearest]
        small.visual = trimesh.visual.ColorVisuals(small, vertex_colors=colors)
    return small


def load_render_mesh(path: str | Path, scale: float = 1.0, max_faces: int | None = None) -> RenderMesh:
    """Load an OBJ/PLY (or any format trimesh reads) as a :class:`RenderMesh`.

    Args:
        path: mesh file; OBJ materials with a texture image are kept.
        scale: multiplier taking the file's units to metres (BOP PLY: 0.001).
        max_faces: see :func:`mesh_from_trimesh`.
    """
    import trimesh  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise RenderError(f"mesh file not found: {path}")
    loaded = trimesh.load(path, process=False, force="mesh")
    return mesh_from_trimesh(loaded, scale=scale, max_faces=max_faces)


def random_light(
    rng: np.random.Generator,
    intensity: tuple[float, float] = (0.5, 1.4),
    ambient: tuple[float, float] = (0.2, 0.55),
    *,
    point_lights: tuple[int, int] = (0, 0),
    point_intensity: tuple[float, float] = (0.4, 1.6),
    hemisphere: float = 0.0,
) -> Light:
    """Random light for domain randomisation: direction in the camera-facing hemisphere,
    random intensity and a tinted colour, random ambient and highlight.

    Optionally (both off by default, so the draws of older datasets stay the same):
    ``point_lights`` (min, max) lamps of ``point_intensity`` strength, 0.3-1.1 m around a
    point 0.4-1.1 m in front of the camera; and a hemisphere ambient whose dark side has
    ``1 - U(0, hemisphere)`` times the sky's ambient, with the sky in a random direction.
    """
    d = rng.normal(size=3)
    d[2] = -abs(d[2]) - 0.2  # toward the camera side (surfaces face -z)
    d /= np.linalg.norm(d)
    tint = rng.uniform(0.75, 1.0, size=3)
    color = tint / tint.max() * rng.uniform(*intensity)
    amb = rng.uniform(*ambient) * rng.uniform(0.85, 1.0, size=3)
    light = Light(
        direction=tuple(d.tolist()),
        color=tuple(color.tolist()),
        ambient=tuple(amb.tolist()),
        specular=float(rng.uniform(0.0, 0.4)),
        shininess=float(rng.uniform(4.0, 64.0)),
    )
    if hemisphere > 0:
        sky = rng.normal(size=3)
        sky /= np.linalg.norm(sky)
        ground = amb * (1.0 - rng.uniform(0.0, hemisphere))
        light = replace(light, ground_ambient=tuple(ground.tolist()), sky=tuple(sky.tolist()))
    if point_lights[1] > 0:
        lamps = []
        for _ in range(int(rng.integers(point_lights[0], point_lights[1] + 1))):
            around = np.array([0.0, 0.0, rng.uniform(0.4, 1.1)])
            offset = rng.normal(size=3)
            offset *= rng.uniform(0.3, 1.1) / np.linalg.norm(offset)
            lamp_tint = rng.uniform(0.7, 1.0, size=3)
            lamp_color = lamp_tint / lamp_tint.max() * rng.uniform(*point_intensity)
            lamps.append(PointLight(tuple((around + offset).tolist()), tuple(lamp_color.tolist())))
        light = replace(light, points=tuple(lamps))
    return light


class Renderer:
    """An offscreen EGL context with one framebuffer, reused for every image.

    Create once per process (context creation costs ~100 ms), upload meshes once with
    :meth:`add_mesh`, then call :meth:`render` per image.
    """

    def __init__(self, width: int, height: int, near: float = 0.05, far: float = 20.0, backend: str = "egl"):
        """Args: width, height: image size in pixels; near, far: clip range, metres;
        backend: moderngl standalone backend ('egl' for headless)."""
        import moderngl  # noqa: PLC0415 - optional heavy dependency, training only

        if width <= 0 or height <= 0:
            raise RenderError(f"image size must be positive, got {width}x{height}")
        self.width, self.height, self.near, self.far = int(width), int(height), float(near), float(far)
        self.ctx = moderngl.create_standalone_context(backend=backend)
        self.prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        size = (self.width, self.height)
        self._color = self.ctx.renderbuffer(size, components=4, dtype="f1")
        self._zbuf = self.ctx.renderbuffer(size, components=1, dtype="f4")
        self._depth = self.ctx.depth_renderbuffer(size)
        self.fbo = self.ctx.framebuffer([self._color, self._zbuf], self._depth)
        self._white = self.ctx.texture((1, 1), 3, bytes([255, 255, 255]))
        self._meshes: dict[str, tuple] = {}
        _LOG.debug("renderer %dx%d on %s", width, height, self.ctx.info.get("GL_RENDERER"))

    @property
    def gl_renderer(self) -> str:
        """The GL renderer string (e.g. 'llvmpipe ...' or the NVIDIA GPU)."""
        return str(self.ctx.info.get("GL_RENDERER", "unknown"))

    def has_mesh(self, key: str) -> bool:
        """True when a mesh was uploaded under ``key``."""
        return key in self._meshes

    def add_mesh(self, key: str, mesh: RenderMesh) -> None:
        """Upload a mesh's buffers (and texture) once under ``key``."""
        n = len(mesh.vertices)
        uv = mesh.uv if mesh.uv is not None else np.zeros((n, 2), np.float32)
        for name, arr, cols in (("normals", mesh.normals, 3), ("colors", mesh.colors, 3), ("uv", uv, 2)):
            if arr.shape != (n, cols):
                raise RenderError(f"mesh '{key}': {name} has shape {arr.shape}, expected ({n}, {cols})")
        if mesh.faces.ndim != 2 or mesh.faces.shape[1] != 3 or mesh.faces.max(initial=0) >= n:
            raise RenderError(f"mesh '{key}': faces must be (F, 3) indices below {n}")
        self.release_mesh(key)
        data = np.hstack([mesh.vertices, mesh.normals, mesh.colors, uv]).astype("f4")
        vbo = self.ctx.buffer(data.tobytes())
        ibo = self.ctx.buffer(mesh.faces.astype("u4").tobytes())
        vao = self.ctx.vertex_array(
            self.prog, [(vbo, "3f 3f 3f 2f", "in_pos", "in_normal", "in_color", "in_uv")], ibo
        )
        tex = None
        if mesh.texture is not None:
            img = np.ascontiguousarray(np.flipud(mesh.texture))  # GL texture row 0 = v = 0 = image bottom
            tex = self.ctx.texture((img.shape[1], img.shape[0]), 3, img.tobytes())
            tex.build_mipmaps()
        self._meshes[key] = (vao, vbo, ibo, tex, mesh.bounds())

    def release_mesh(self, key: str) -> None:
        """Free a mesh's GL objects (no-op when absent)."""
        entry = self._meshes.pop(key, None)
        if entry is not None:
            for obj in entry[:4]:
                if obj is not None:
                    obj.release()

    def render(
        self, items: Sequence[RenderItem], K: np.ndarray, light: Light | None = None, with_depth: bool = True
    ) -> RenderOutput:
        """Draw the items with a depth test (mutual occlusion) and read back the outputs.

        Args:
            items: meshes with poses (camera frame, metres); item i gets instance id i + 1
                (at most 255 items per call).
            K: (3, 3) intrinsics, OpenCV convention, pixels.
            light: lighting; a neutral default when None.
            with_depth: also read the depth attachment (else ``depth`` is all zeros).
        """
        if len(items) > _MAX_ITEMS:
            raise RenderError(f"at most {_MAX_ITEMS} items per render call, got {len(items)}")
        self._begin(K, light or Light())
        for i, item in enumerate(items):
            self._draw(item, float(i + 1))
        w, h = self.width, self.height
        rgba = np.frombuffer(self.fbo.read(components=4, attachment=0, dtype="f1"), np.uint8).reshape(h, w, 4)
        depth = np.zeros((h, w), np.float32)
        if with_depth:
            depth = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="f4"), np.float32).reshape(
                h, w
            )
        return RenderOutput(
            rgb=rgba[..., :3].copy(), instance=rgba[..., 3].astype(np.int32), depth=depth.copy()
        )

    def render_crop(
        self, item: RenderItem, K: np.ndarray, light: Light | None = None, with_depth: bool = False
    ) -> tuple[tuple[int, int, int, int], RenderOutput] | None:
        """Draw one item alone, clipped to its projected box (see :meth:`projected_box`).

        Returns:
            (box, output) with box = (x0, y0, x1, y1) and outputs of shape (y1-y0, x1-x0);
            None when the item is outside the image. Cheaper than :meth:`render` for
            small objects (cut-and-paste layers).
        """
        box = self.projected_box(item, K)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        vp = (x0, y0, x1 - x0, y1 - y0)
        self._begin(K, light or Light(), scissor=vp)
        self._draw(item, 1.0)
        rgba = np.frombuffer(self.fbo.read(viewport=vp, components=4, dtype="f1"), np.uint8)
        rgba = rgba.reshape(y1 - y0, x1 - x0, 4)
        depth = np.zeros((y1 - y0, x1 - x0), np.float32)
        if with_depth:
            depth = np.frombuffer(
                self.fbo.read(viewport=vp, components=1, attachment=1, dtype="f4"), np.float32
            )
            depth = depth.reshape(y1 - y0, x1 - x0).copy()
        self.fbo.scissor = None
        return box, RenderOutput(
            rgb=rgba[..., :3].copy(), instance=rgba[..., 3].astype(np.int32), depth=depth
        )

    def render_masks_alone(self, items: Sequence[RenderItem], K: np.ndarray) -> list[np.ndarray]:
        """Full (unoccluded) silhouette of each item drawn alone: list of (H, W) bool.

        BOP's ``bbox_obj``, ``px_count_all`` and ``visib_fract`` need these. Each pass
        is clipped (scissor) to the item's projected bounding box, so clearing and
        reading back cost only that region.
        """
        masks = []
        for item in items:
            mask = np.zeros((self.height, self.width), bool)
            crop = self.render_crop(item, K)
            if crop is not None:
                (x0, y0, x1, y1), out = crop
                mask[y0:y1, x0:x1] = out.instance > 0
            masks.append(mask)
        return masks

    def projected_box(self, item: RenderItem, K: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, y0, x1, y1), end-exclusive and clipped to the image, that holds
        every pixel the item can cover (from its 3D bounding box); None when outside.
        The whole image when part of the box is behind the near plane."""
        box = self._unclipped_box(item, K)
        if box is None:
            return (0, 0, self.width, self.height)
        x0, y0, x1, y1 = box
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height)
        return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None

    def _unclipped_box(self, item: RenderItem, K: np.ndarray) -> tuple[int, int, int, int] | None:
        """:meth:`projected_box` before clipping to the image; None when part of the 3D box
        is behind the near plane."""
        lo, hi = self._meshes[self._check_item(item)][4]
        corners = np.array(
            [
                [hi[0] if k & 4 else lo[0], hi[1] if k & 2 else lo[1], hi[2] if k & 1 else lo[2]]
                for k in range(8)
            ]
        )
        cam = corners @ np.asarray(item.R, dtype=np.float64).T + np.asarray(item.t, dtype=np.float64).reshape(
            3
        )
        if np.any(cam[:, 2] <= self.near):
            return None
        uv = cam @ np.asarray(K, dtype=np.float64).T
        uv = uv[:, :2] / uv[:, 2:3]
        x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 2
        return int(x0), int(y0), int(x1), int(y1)

    def full_silhouette(
        self, item: RenderItem, K: np.ndarray
    ) -> tuple[tuple[int, int, int, int], int] | None:
        """BOP's ``bbox_obj`` (x, y, w, h) and ``px_count_all`` of an item that the image
        border cuts, counted on the whole silhouette, the part outside the image included.

        BOP defines both on the full silhouette (bop_toolkit's ``calc_gt_info.py`` renders
        on a larger canvas); clipping them to the image makes a truncated object look
        fully visible. Here the item is drawn alone with the principal point moved so that
        its projected box lands inside the canvas (scaled down when the box is larger than
        the canvas; counts are then scaled back). None when the item lies wholly inside
        the image (its in-image silhouette is already the whole one) or is not in front of
        the camera.
        """
        box = self._unclipped_box(item, K)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        if x0 >= 0 and y0 >= 0 and x1 <= self.width and y1 <= self.height:
            return None
        f = min(1.0, (self.width - 2) / (x1 - x0), (self.height - 2) / (y1 - y0))
        shift = np.array([[f, 0.0, 1.0 - f * x0], [0.0, f, 1.0 - f * y0], [0.0, 0.0, 1.0]])
        crop = self.render_crop(item, shift @ np.asarray(K, dtype=np.float64))
        if crop is None:
            return None
        (cx0, cy0, _, _), out = crop
        ys, xs = np.nonzero(out.instance > 0)
        if len(xs) == 0:
            return None
        # canvas pixel c -> image pixel (c - 1) / f + x0 (exact for f = 1)
        bx0 = int(np.floor((xs.min() + cx0 - 1.0) / f + x0))
        by0 = int(np.floor((ys.min() + cy0 - 1.0) / f + y0))
        bx1 = int(np.ceil((xs.max() + cx0 - 1.0) / f + x0))
        by1 = int(np.ceil((ys.max() + cy0 - 1.0) / f + y0))
        return (bx0, by0, bx1 - bx0 + 1, by1 - by0 + 1), round(len(xs) / (f * f))

    def _begin(self, K: np.ndarray, light: Light, scissor: tuple[int, int, int, int] | None = None) -> None:
        import moderngl  # noqa: PLC0415

        self._P = gl_projection(K, self.width, self.height, self.near, self.far)
        # make this context current again: creating or releasing another renderer in the
        # same process (a test's second canvas) leaves its own, or none, current
        self.ctx.__enter__()
        self.fbo.use()
        self.fbo.scissor = scissor  # GL row r holds image row r (see gl_projection)
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)
        self.prog["light_dir"].value = tuple(
            np.asarray(light.direction, float) / np.linalg.norm(light.direction)
        )
        self.prog["light_color"].value = tuple(light.color)
        self.prog["ambient"].value = tuple(light.ambient)
        self.prog["specular"].value = float(light.specular)
        self.prog["shininess"].value = float(light.shininess)
        sky = np.asarray(light.sky, float)
        if sky.shape != (3,) or not np.isfinite(sky).all() or not np.linalg.norm(sky) > 0:
            raise RenderError(f"light sky must be a finite non-zero (3,) direction, got {light.sky!r}")
        self.prog["hemisphere"].value = light.ground_ambient is not None
        self.prog["ground_ambient"].value = tuple(light.ground_ambient or light.ambient)
        self.prog["sky"].value = tuple(sky / np.linalg.norm(sky))
        self._set_points(light.points)

    def _set_points(self, points: Sequence[PointLight]) -> None:
        if len(points) > MAX_POINT_LIGHTS:
            raise RenderError(f"at most {MAX_POINT_LIGHTS} point lights, got {len(points)}")
        if any(p.reach_m <= 0 for p in points):
            raise RenderError("point light reach_m must be positive")
        pos = np.zeros((MAX_POINT_LIGHTS, 3), "f4")
        color = np.zeros((MAX_POINT_LIGHTS, 3), "f4")
        reach2 = np.ones(MAX_POINT_LIGHTS, "f4")
        for i, p in enumerate(points):
            pos[i], color[i], reach2[i] = p.position, p.color, p.reach_m**2
        self.prog["n_points"].value = len(points)
        self.prog["point_pos"].write(pos.tobytes())
        self.prog["point_color"].write(color.tobytes())
        self.prog["point_reach2"].write(reach2.tobytes())

    def _check_item(self, item: RenderItem) -> str:
        if item.mesh_key not in self._meshes:
            raise RenderError(f"unknown mesh key '{item.mesh_key}'; call add_mesh first")
        R = np.asarray(item.R, dtype=np.float64)
        t = np.asarray(item.t, dtype=np.float64).reshape(-1)
        if R.shape != (3, 3) or t.shape != (3,) or not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
            raise RenderError(
                f"item '{item.mesh_key}': need finite R (3, 3) and t (3,), got {R.shape}, {t.shape}"
            )
        return item.mesh_key

    def _draw(self, item: RenderItem, instance_id: float) -> None:
        self._check_item(item)
        R = np.asarray(item.R, dtype=np.float64)
        t = np.asarray(item.t, dtype=np.float64).reshape(-1)
        vao, _, _, tex, _ = self._meshes[item.mesh_key]
        mv = np.eye(4)
        mv[:3, :3], mv[:3, 3] = R, t
        # moderngl expects column-major matrices: write the transpose's bytes.
        self.prog["mvp"].write((self._P @ mv).T.astype("f4").tobytes())
        self.prog["model_view"].write(mv.T.astype("f4").tobytes())
        self.prog["color_gain"].value = tuple(float(g) for g in item.color_gain)
        self.prog["use_texture"].value = tex is not None
        self.prog["instance_id"].value = instance_id
        (tex or self._white).use(location=0)
        self.prog["tex"].value = 0
        vao.render()

    def release(self) -> None:
        """Free every GL object and the context."""
        for key in list(self._meshes):
            self.release_mesh(key)
        self.fbo.release()
        self.ctx.release()
