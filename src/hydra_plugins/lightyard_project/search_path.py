"""Puts the config_dir of the user's project (lightyard.config.project) in front of lightyard's
own configs, in every Hydra composition of lightyard's configs: the command line, the pre-run
check, sweeps and their workers, eval and resume, compose_config in a test. A project option of
the same name (its own model/cnn.yaml) then wins. Apps whose configs are not lightyard's are
left alone; a project whose settings are wrong is reported by the command line (exit 2)."""

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "lightyard-project"


class LightyardProjectSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from lightyard.config.compose import config_dir
        from lightyard.config.project import ProjectError, find_project

        ours = config_dir().resolve()
        anchor = None
        for element in search_path.get_path():
            path = element.path or ""
            if element.provider == PROVIDER:
                return  # already there (a composition that is run again)
            local = path.removeprefix("file://")  # initialize_config_dir gives a bare path
            if "://" not in local and local and Path(local).resolve() == ours:
                anchor = SearchPathQuery(provider=element.provider, path=element.path)
        if anchor is None:
            return
        try:
            project = find_project()
        except ProjectError:
            return
        if project is not None and project.config_dir.resolve() != ours:
            search_path.prepend(PROVIDER, f"file://{project.config_dir}", anchor=anchor)
