"""ament_python build of hrpose_ros (also installable with pip for development)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hrpose_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.json") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="hrpose_ros maintainers",
    maintainer_email="maintainers@hrpose-ros.invalid",
    description="Real-time 6D object pose estimation (HRPose) for ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "hrpose_node = hrpose_ros.ros.node:main",
            "hrpose-play = hrpose_ros.ros.player:main",
            "hrpose-demo = hrpose_ros.ros.demo:main",
            "hrpose-train = hrpose_ros.training.train:main",
            "hrpose-eval = hrpose_ros.training.evaluate:main",
            "hrpose-export = hrpose_ros.training.export:main",
            "hrpose-synth = hrpose_ros.data.synthetic:main",
            "hrpose-build-engine = hrpose_ros.runtime.build_engine:main",
        ],
    },
)
