"""The container images, built with a real Docker engine: `python -m cluster.image` (`make image`).

engine      the docker CLI: does an engine answer, inspect, run, build
bases       which base images the Dockerfile gets: the real `FROM` where a registry answers,
            otherwise stand-ins built here from Debian (debootstrap + `docker import`)
wheelhouse  the runtime wheels, downloaded on the host for a build that cannot reach PyPI
build       the service and mtail images, tagged with a hash of their inputs and reused
"""
