"""Where the indices come from: templates installed, indices and aliases made, reindexed, checked, dropped."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, NotFoundError, helpers

from pipeline.errors import SearchBackendError
from pipeline.search.elastic.bulk import BULK_CHUNK_BYTES, BULK_CHUNK_DOCS, BULK_INITIAL_BACKOFF, BULK_MAX_BACKOFF
from pipeline.search.elastic.connection import ElasticsearchBase, describe, error_type
from pipeline.search.elastic.documents import reanalysed
from pipeline.search.elastic.templates import FAMILIES, Family

log = logging.getLogger(__name__)

SCAN_PAGE = 500


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """What `reindex` did for one family."""

    family: Family
    alias: str
    old_index: str
    new_index: str
    copied: int


@dataclass(slots=True)
class AliasCheck:
    """The state of one family in the cluster, compared with the template files."""

    family: Family
    alias: str
    indices: list[str]
    index_version: int | None
    template_version: int
    installed_template_version: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def mapping(self) -> str:
        """The index's mapping version in words (an index not made by ``setup`` or ``reindex`` has none)."""
        return "no newsagg mapping version" if self.index_version is None else f"mapping version {self.index_version}"


class IndexLifecycle(ElasticsearchBase):
    """Index templates, the versioned indices behind the aliases, and their migration by reindex."""

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Make sure both aliases resolve; install templates and first indices only when missing.

        Runs before every pipeline pass, so it only reads when everything is in place:
        updating templates is `newsagg es setup`'s job (and needs more privileges).
        """
        self.ready()
        with self._errors("setup"):
            if all(self._alias_indices(self.alias(f)) for f in FAMILIES):
                return
        self._install()

    def install(self) -> list[str]:
        """Install or update the templates and create the first index behind each missing alias.

        Idempotent; returns one line per thing checked or done, for `newsagg es setup`.
        """
        self.ready()
        return self._install()

    def exists(self) -> bool:
        """Both aliases resolve; nothing is made (a reader's check)."""
        with self._errors("a check of the aliases"):
            return all(self._alias_indices(self.alias(f)) for f in FAMILIES)

    def _install(self) -> list[str]:
        done: list[str] = []
        with self._errors("setup"):
            done += self._install_templates()
            for family in FAMILIES:
                done.append(self._ensure_alias(family))
        return done

    def _install_templates(self) -> list[str]:
        done = []
        for family, template in self.templates.items():
            name = self.alias(family)
            installed = self._installed_template(name)
            if installed is not None and installed.get("_meta", {}).get("checksum") == template.checksum:
                done.append(f"template {name} up to date (version {template.version})")
                continue
            body = dict(template.body)
            body["mappings"] = {**template.body["mappings"], "_meta": template.meta}
            self.client.indices.put_index_template(
                name=name,
                index_patterns=[f"{name}-v*"],
                template=body,
                priority=template.priority,
                version=template.version,
                meta={**template.meta, "managed_by": "newsagg"},
            )
            if installed is None:
                what = f"installed (version {template.version})"
            else:
                what = f"updated (version {installed.get('version')} -> {template.version})"
            done.append(f"template {name} {what}")
            log.info("index template %s %s at %s", name, what, self.where)
        return done

    def _ensure_alias(self, family: Family) -> str:
        alias = self.alias(family)
        current = self._alias_indices(alias)
        if current:
            return f"alias {alias} -> {', '.join(current)}"
        generations = self._generations(alias)
        if generations:
            # An interrupted setup or reindex left indices but no alias: adopt the newest.
            index = f"{alias}-v{max(generations)}"
            self.client.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias}}])
            log.info("alias %s attached to existing index %s", alias, index)
            return f"alias {alias} attached to existing index {index}"
        index = f"{alias}-v1"
        try:
            self.client.indices.create(index=index, aliases={alias: {}})
        except ApiError as exc:
            if error_type(exc) != "resource_already_exists_exception":
                raise
            # Another worker ran setup at the same moment; the alias may still be ours to add.
            self.client.indices.update_aliases(actions=[{"add": {"index": index, "alias": alias}}])
        log.info("created index %s behind alias %s", index, alias)
        return f"created index {index} behind alias {alias}"

    def _installed_template(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.client.indices.get_index_template(name=name).body
        except NotFoundError:
            return None
        templates = found.get("index_templates") or []
        return dict(templates[0]["index_template"]) if templates else None

    def _alias_indices(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=alias).body)
        except NotFoundError as exc:
            if exc.meta.headers.get("x-elastic-product") != "Elasticsearch":
                # Another server at that address (a wrong port, a proxy's page): no word on the alias.
                raise SearchBackendError(
                    f"{self.where} is not Elasticsearch (it answered 404 without saying it is): check es.urls"
                ) from None
            return []

    def _generations(self, alias: str) -> list[int]:
        found = self.client.indices.get(index=f"{alias}-v*", expand_wildcards="open,closed").body
        pattern = re.compile(rf"^{re.escape(alias)}-v(\d+)$")
        return sorted(int(m.group(1)) for name in found if (m := pattern.match(name)))

    def document_counts(self) -> dict[str, int]:
        """How many stories and articles the index holds."""
        with self._errors("count"):
            return {f: int(self.client.count(index=self.alias(f)).body["count"]) for f in FAMILIES}

    # -- maintenance ---------------------------------------------------------------------

    def reindex(self, families: Sequence[Family] = FAMILIES) -> list[ReindexReport]:
        """Move each family to a new index generation built from the current template.

        The old index is write-blocked while it is copied, so a concurrent pipeline run gets
        its writes refused (transient failures: the outbox keeps them) instead of lost, and
        searches keep answering from the old index until the alias moves.

        Raises:
            SearchBackendError: an alias is missing or ambiguous, or the copy is incomplete;
                the old index then stays behind the alias, writable again.
        """
        self.ready()
        with self._errors("reindex"):
            self._install_templates()
        return [self._reindex_one(family) for family in families]

    def _reindex_one(self, family: Family) -> ReindexReport:
        alias = self.alias(family)
        with self._errors(f"reindex of {alias}"):
            current = self._alias_indices(alias)
            if len(current) != 1:
                raise SearchBackendError(
                    f"alias {alias} points at {', '.join(current) or 'nothing'}; "
                    "run `newsagg es setup` (and `newsagg es check`) first"
                )
            old = current[0]
            found = re.match(rf"^{re.escape(alias)}-v(\d+)$", old)
            new = f"{alias}-v{int(found.group(1)) + 1 if found else 1}"
            if self.client.indices.exists(index=new):
                # Not behind the alias, so nobody reads it: the leftover of an interrupted reindex.
                log.warning("deleting %s, left over from an interrupted reindex", new)
                self.client.indices.delete(index=new)
            self.client.indices.put_settings(index=old, settings={"index.blocks.write": True})
        try:
            with self._errors(f"reindex of {alias}"):
                self.client.indices.create(index=new)
                copied = self._copy(old, new)
                self.client.indices.refresh(index=new)
                before = int(self.client.count(index=old).body["count"])
                after = int(self.client.count(index=new).body["count"])
                if before != after:
                    raise SearchBackendError(f"reindex of {alias}: {old} holds {before} documents, {new} {after}")
                self.client.indices.update_aliases(
                    actions=[
                        {"remove": {"index": old, "alias": alias}},
                        {"add": {"index": new, "alias": alias}},
                    ]
                )
        except BaseException:
            with suppress(Exception):
                self.client.options(ignore_status=404).indices.delete(index=new)
            with suppress(Exception):
                self.client.indices.put_settings(index=old, settings={"index.blocks.write": None})
            raise
        with self._errors(f"reindex of {alias}"):
            self.client.indices.delete(index=old)
        log.info("reindexed %s: %s -> %s, %d documents", alias, old, new, copied)
        return ReindexReport(family, alias, old, new, copied)

    def _copy(self, old: str, new: str) -> int:
        # Documents keep their versions, so a late write older than a copied document stays refused.
        # Stories get their terms anew: a reindex is how a change of the analysis is rolled out.
        actions = (
            {"_op_type": "index", "_index": new, "_id": hit["_id"], "_source": reanalysed(hit["_source"]),
             "_version": hit["_version"], "_version_type": "external"}
            for hit in helpers.scan(
                self.client, index=old, query={"query": {"match_all": {}}}, size=SCAN_PAGE, version=True
            )
        )
        copied, refused = 0, []
        for ok, item in helpers.streaming_bulk(
            self.client, actions, chunk_size=BULK_CHUNK_DOCS, max_chunk_bytes=BULK_CHUNK_BYTES,
            raise_on_error=False, max_retries=max(self.settings.max_retries, 3),
            initial_backoff=BULK_INITIAL_BACKOFF, max_backoff=BULK_MAX_BACKOFF,
        ):
            if ok:
                copied += 1
            else:
                refused.append(next(iter(item.values())))
        if refused:
            first = refused[0]
            raise SearchBackendError(
                f"{new} refused {len(refused)} documents copied from {old} (first: {first.get('_id')}: "
                f"{describe(first.get('error'))}); does the new template still fit the documents?"
            )
        return copied

    def check(self) -> list[AliasCheck]:
        """Compare what is in the cluster with the template files; `ok` is False where action is needed."""
        self.ready()
        results = []
        with self._errors("check"):
            for family, template in self.templates.items():
                alias = self.alias(family)
                installed = self._installed_template(alias)
                indices = self._alias_indices(alias)
                meta: dict[str, Any] = {}
                if len(indices) == 1:
                    mapping = self.client.indices.get_mapping(index=indices[0]).body
                    meta = mapping[indices[0]]["mappings"].get("_meta") or {}
                result = AliasCheck(
                    family=family,
                    alias=alias,
                    indices=indices,
                    index_version=meta.get("version"),
                    template_version=template.version,
                    installed_template_version=None if installed is None else installed.get("version"),
                )
                if installed is None:
                    result.problems.append(f"template {alias} is not installed: run `newsagg es setup`")
                elif installed.get("_meta", {}).get("checksum") != template.checksum:
                    result.problems.append(
                        f"template {alias} in the cluster (version {installed.get('version')}) differs from "
                        f"config/elasticsearch/{family}.json (version {template.version}): run `newsagg es setup`"
                    )
                if not indices and self.client.indices.exists(index=alias):
                    result.problems.append(
                        f"{alias} is an index, not the alias newsagg uses (made by hand?): "
                        "delete it, then run `newsagg es setup` and `newsagg outbox fill`"
                    )
                elif not indices:
                    result.problems.append(f"alias {alias} does not exist: run `newsagg es setup`")
                elif len(indices) > 1:
                    result.problems.append(
                        f"alias {alias} points at several indices ({', '.join(indices)}); "
                        "remove all but the newest from the alias"
                    )
                else:
                    if meta.get("checksum") != template.checksum:
                        result.problems.append(
                            f"index {indices[0]} has {result.mapping}, the template is "
                            f"version {template.version}: run `newsagg es reindex --kind {family}`"
                        )
                    if self._write_blocked(indices[0]):
                        result.problems.append(
                            f"index {indices[0]} refuses writes (an interrupted reindex?): "
                            f"run `newsagg es reindex --kind {family}` again"
                        )
                results.append(result)
        return results

    def _write_blocked(self, index: str) -> bool:
        found = self.client.indices.get_settings(index=index, name="index.blocks.write").body
        blocks = found.get(index, {}).get("settings", {}).get("index", {}).get("blocks", {})
        return str(blocks.get("write", "false")).lower() == "true"

    def drop(self) -> None:
        """Delete this prefix's indices (with their aliases) and templates: for tests and teardown."""
        with self._errors("drop"):
            for family in FAMILIES:
                alias = self.alias(family)
                names = list(self.client.indices.get(index=f"{alias}-v*", expand_wildcards="all").body)
                if names:  # deletes need exact names (action.destructive_requires_name)
                    self.client.indices.delete(index=",".join(names))
                self.client.options(ignore_status=404).indices.delete_index_template(name=alias)
