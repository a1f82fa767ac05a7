"""The imitated Jira: issues, comments, transitions and search, v2 and v3."""

from __future__ import annotations

import aiohttp
import pytest

from tests.sandbox.conftest import Client, adf, issue_fields
from ticketbridge.sandbox import RunningSandbox, SandboxSettings, serve

V2 = "/rest/api/2"
V3 = "/rest/api/3"
NOT_FOUND = {
    "errorMessages": ["Issue does not exist or you do not have permission to see it."],
    "errors": {},
}


async def create(client: Client, base: str = V2, **fields: object) -> dict[str, str]:
    status, body = await client.post(f"{base}/issue", json=issue_fields(**fields))
    assert status == 201, body
    return dict(body)


async def test_v2_create_returns_id_key_and_self(client: Client) -> None:
    created = await create(client, V2, description="plain text")

    assert created["key"] == "OPS-1"
    assert created["id"].isdigit()
    assert created["self"].endswith(f"/rest/api/2/issue/{created['id']}")


async def test_v2_get_returns_fields_with_plain_description(client: Client) -> None:
    await create(client, V2, description="line one\nline two")

    status, issue = await client.get(f"{V2}/issue/OPS-1")

    assert status == 200
    fields = issue["fields"]
    assert fields["summary"] == "web01 HTTP 503"
    assert fields["labels"] == ["corr-nagios-1"]
    assert fields["description"] == "line one\nline two"
    assert fields["status"]["name"] == "Open"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["resolution"] is None
    assert fields["comment"] == {
        "comments": [],
        "maxResults": 0,
        "total": 0,
        "startAt": 0,
    }


async def test_v3_create_and_get_keep_the_description_as_adf(client: Client) -> None:
    created = await create(client, V3, description=adf("disk full"))

    status, issue = await client.get(f"{V3}/issue/{created['id']}")

    assert status == 200
    assert issue["fields"]["description"] == adf("disk full")


async def test_v2_reads_a_v3_description_as_text(client: Client) -> None:
    await create(client, V3, description=adf("disk full"))

    _, issue = await client.get(f"{V2}/issue/OPS-1")

    assert issue["fields"]["description"] == "disk full"


async def test_v3_refuses_a_plain_string_description(client: Client) -> None:
    status, body = await client.post(
        f"{V3}/issue", json=issue_fields(description="plain text")
    )

    assert status == 400
    assert "Atlassian Document" in body["errors"]["description"]


async def test_v2_refuses_an_adf_description(client: Client) -> None:
    status, body = await client.post(
        f"{V2}/issue", json=issue_fields(description=adf("x"))
    )

    assert status == 400
    assert body["errors"] == {"description": "Operation value must be a string"}


async def test_create_without_summary_is_refused(client: Client) -> None:
    fields = issue_fields()
    del fields["fields"]["summary"]

    status, body = await client.post(f"{V2}/issue", json=fields)

    assert status == 400
    assert body == {
        "errorMessages": [],
        "errors": {"summary": "You must specify a summary of the issue."},
    }


async def test_summary_of_255_characters_is_refused(client: Client) -> None:
    status, body = await client.post(
        f"{V2}/issue", json=issue_fields(summary="s" * 255)
    )

    assert status == 400
    assert body["errors"] == {"summary": "Summary must be less than 255 characters."}


async def test_summary_of_254_characters_is_accepted(client: Client) -> None:
    status, _ = await client.post(f"{V2}/issue", json=issue_fields(summary="s" * 254))

    assert status == 201


async def test_label_with_a_space_is_refused(client: Client) -> None:
    status, body = await client.post(f"{V2}/issue", json=issue_fields(labels=["a b"]))

    assert status == 400
    assert body["errors"] == {
        "labels": "The label 'a b' contains spaces which is invalid."
    }


async def test_label_longer_than_255_characters_is_refused(client: Client) -> None:
    label = "x" * 256

    status, body = await client.post(f"{V2}/issue", json=issue_fields(labels=[label]))

    assert status == 400
    assert "exceeds the maximum length" in body["errors"]["labels"]


async def test_unknown_project_is_refused(client: Client) -> None:
    status, body = await client.post(
        f"{V2}/issue", json=issue_fields(project={"key": "NOPE"})
    )

    assert status == 400
    assert set(body["errors"]) == {"project"}


async def test_project_keys_come_from_the_settings() -> None:
    running = await serve("127.0.0.1", 0, SandboxSettings(jira_projects=("MON",)))
    headers = {"Authorization": "Bearer pat"}
    try:
        async with aiohttp.ClientSession(running.url, headers=headers) as session:
            client = Client(session)
            ops, _ = await client.post(f"{V2}/issue", json=issue_fields())
            mon, body = await client.post(
                f"{V2}/issue", json=issue_fields(project={"key": "MON"})
            )
    finally:
        await running.close()

    assert (ops, mon) == (400, 201)
    assert body["key"] == "MON-1"


@pytest.mark.parametrize("base", [V2, V3])
async def test_unknown_issue_gets_the_jira_404_body(client: Client, base: str) -> None:
    status, body = await client.get(f"{base}/issue/OPS-99")

    assert status == 404
    assert body == NOT_FOUND


async def test_v2_comment_is_added_and_counted(client: Client) -> None:
    await create(client)

    status, comment = await client.post(
        f"{V2}/issue/OPS-1/comment", json={"body": "recovered"}
    )
    _, issue = await client.get(f"{V2}/issue/OPS-1")

    assert status == 201
    assert comment["body"] == "recovered"
    assert issue["fields"]["comment"]["total"] == 1
    assert issue["fields"]["comment"]["comments"][0]["id"] == comment["id"]


async def test_v3_comment_takes_and_returns_adf(client: Client) -> None:
    await create(client, V3)

    status, comment = await client.post(
        f"{V3}/issue/OPS-1/comment", json={"body": adf("acknowledged")}
    )

    assert status == 201
    assert comment["body"] == adf("acknowledged")


async def test_v3_comment_refuses_a_plain_string(client: Client) -> None:
    await create(client, V3)

    status, body = await client.post(
        f"{V3}/issue/OPS-1/comment", json={"body": "acknowledged"}
    )

    assert status == 400
    assert "comment" in body["errors"]


async def test_comment_on_unknown_issue_is_404(client: Client) -> None:
    status, body = await client.post(f"{V2}/issue/OPS-7/comment", json={"body": "x"})

    assert (status, body) == (404, NOT_FOUND)


async def test_open_issue_offers_start_progress_and_done(client: Client) -> None:
    await create(client)

    status, body = await client.get(f"{V2}/issue/OPS-1/transitions")

    assert status == 200
    offered = {t["name"]: t["to"]["name"] for t in body["transitions"]}
    assert offered == {"Start Progress": "In Progress", "Done": "Done"}


async def test_done_transition_resolves_the_issue(client: Client) -> None:
    await create(client)
    _, listing = await client.get(f"{V2}/issue/OPS-1/transitions")
    done = next(t["id"] for t in listing["transitions"] if t["name"] == "Done")

    status, body = await client.post(
        f"{V2}/issue/OPS-1/transitions",
        json={
            "transition": {"id": done},
            "update": {"comment": [{"add": {"body": "recovered"}}]},
        },
    )
    _, issue = await client.get(f"{V2}/issue/OPS-1")

    assert (status, body) == (204, "")
    assert issue["fields"]["status"]["statusCategory"]["key"] == "done"
    assert issue["fields"]["resolution"] == {"name": "Done"}
    assert issue["fields"]["comment"]["total"] == 1


async def test_done_issue_offers_only_reopen(client: Client) -> None:
    await create(client, V3)
    await client.post(
        f"{V3}/issue/OPS-1/transitions", json={"transition": {"id": "31"}}
    )

    _, body = await client.get(f"{V3}/issue/OPS-1/transitions")

    assert [(t["name"], t["to"]["name"]) for t in body["transitions"]] == [
        ("Reopen", "Open")
    ]


async def test_reopen_clears_the_resolution(client: Client) -> None:
    await create(client)
    await client.post(
        f"{V2}/issue/OPS-1/transitions", json={"transition": {"id": "31"}}
    )

    status, _ = await client.post(
        f"{V2}/issue/OPS-1/transitions", json={"transition": {"id": "41"}}
    )
    _, issue = await client.get(f"{V2}/issue/OPS-1")

    assert status == 204
    assert issue["fields"]["status"]["name"] == "Open"
    assert issue["fields"]["resolution"] is None


async def test_transition_not_offered_from_current_status_is_400(
    client: Client,
) -> None:
    await create(client)

    status, body = await client.post(
        f"{V2}/issue/OPS-1/transitions", json={"transition": {"id": "41"}}
    )

    assert status == 400
    assert body["errorMessages"] == ["Transition id '41' is not valid for this issue."]


async def test_old_search_finds_issues_by_label(client: Client) -> None:
    await create(client, labels=["corr-a"])
    await create(client, labels=["corr-b"])

    status, body = await client.get(f"{V2}/search", params={"jql": 'labels = "corr-b"'})

    assert status == 200
    assert body["total"] == 1
    assert [i["key"] for i in body["issues"]] == ["OPS-2"]


async def test_old_search_by_post_with_project_and_label(client: Client) -> None:
    await create(client, V3, labels=["corr-a"])

    status, body = await client.post(
        f"{V3}/search",
        json={"jql": 'project = OPS AND labels = "corr-a"', "fields": ["status"]},
    )

    assert status == 200
    assert body["total"] == 1
    assert set(body["issues"][0]["fields"]) == {"status"}


async def test_old_search_without_match_is_empty(client: Client) -> None:
    status, body = await client.get(f"{V2}/search", params={"jql": "labels = nothing"})

    assert (status, body["total"], body["issues"]) == (200, 0, [])


async def test_new_search_returns_only_ids_by_default(client: Client) -> None:
    created = await create(client, V3, labels=["corr-a"])

    status, body = await client.post(
        f"{V3}/search/jql", json={"jql": 'project = OPS AND labels = "corr-a"'}
    )

    assert status == 200
    assert body == {"issues": [{"id": created["id"]}], "isLast": True}


async def test_new_search_pages_with_next_page_token(client: Client) -> None:
    for _ in range(3):
        await create(client, V3, labels=["corr-a"])
    query = {"jql": 'labels = "corr-a"', "maxResults": "2", "fields": "summary"}

    _, first = await client.get(f"{V3}/search/jql", params=query)
    token = first["nextPageToken"]
    _, second = await client.get(
        f"{V3}/search/jql", params={**query, "nextPageToken": token}
    )

    assert [i["key"] for i in first["issues"]] == ["OPS-1", "OPS-2"]
    assert first["isLast"] is False
    assert [i["key"] for i in second["issues"]] == ["OPS-3"]
    assert second["isLast"] is True
    assert "nextPageToken" not in second


async def test_jql_outside_the_subset_is_400(client: Client) -> None:
    status, body = await client.get(
        f"{V2}/search", params={"jql": "status = Open ORDER BY key"}
    )

    assert status == 400
    assert body["errorMessages"] and body["errors"] == {}


async def test_unbounded_new_search_is_400(client: Client) -> None:
    status, body = await client.post(f"{V3}/search/jql", json={"jql": ""})

    assert status == 400
    assert "Unbounded" in body["errorMessages"][0]


async def test_jql_naming_an_unknown_project_is_400(client: Client) -> None:
    status, body = await client.get(
        f"{V2}/search", params={"jql": 'project = NOPE AND labels = "x"'}
    )

    assert status == 400
    assert body["errorMessages"] == [
        "The value 'NOPE' does not exist for the field 'project'."
    ]


async def test_request_without_authorization_is_401(sandbox: RunningSandbox) -> None:
    url = f"{sandbox.url}{V2}/issue/OPS-1"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json()

    assert response.status == 401
    assert body["errorMessages"] and body["errors"] == {}


async def test_configured_token_rejects_other_secrets() -> None:
    running = await serve("127.0.0.1", 0, SandboxSettings(token="right"))
    url = f"{running.url}{V2}/issue/OPS-1"
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            for header in (
                "Bearer wrong",
                aiohttp.encode_basic_auth("ops", "wrong"),
                "Bearer right",
                aiohttp.encode_basic_auth("ops", "right"),
            ):
                async with session.get(url, headers={"Authorization": header}) as r:
                    statuses.append(r.status)
    finally:
        await running.close()

    assert statuses == [401, 401, 404, 404]
