"""Print the project's dependencies from pyproject.toml, one per line, for `pip install -r`.

The images install these before copying the code, so a code change does not reinstall
everything (Docker reuses the dependency layer). Usage: `python docker/project_deps.py [extra...]`.
"""

import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
