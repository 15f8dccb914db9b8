//! Tables: insert, read, update, delete, soft delete, undelete, ids, system properties, concurrency,
//! dynamic schema (protocol.md §2).

use crate::helpers::{ids, keys, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    insert_returns_201_with_location_etag_and_requested_system_properties,
    insert_with_duplicate_id_returns_409,
    insert_validation_follows_the_protocol_messages,
    string_ids_accept_the_protocol_examples,
    integer_id_tables_generate_ids_and_refuse_client_ids,
    read_by_id_returns_the_object_etag_and_304,
    read_by_id_refuses_paging_options_and_bad_ids,
    rows_without_orderby_come_back_in_insertion_order,
    top_skip_and_inlinecount_follow_the_limits,
    select_returns_exactly_the_named_columns,
    update_writes_only_the_patch_and_echoes_it,
    update_validation_messages,
    if_match_conflicts_return_412_with_the_server_item,
    delete_is_hard_on_plain_tables,
    soft_delete_hides_rows_and_undelete_restores_them,
    system_properties_parameter_is_parsed_strictly,
    dynamic_schema_adds_typed_columns_case_insensitively,
    dynamic_schema_disabled_refuses_unknown_columns,
    failed_type_conversion_is_400_bad_request,
    numbers_are_doubles_and_dates_round_trip_with_milliseconds,
    custom_and_reserved_query_parameters,
    columns_that_queries_filter_and_order_on_get_indexed,
    reads_by_id_see_every_acknowledged_write,
    concurrent_inserts_each_get_their_own_outcome,
);

async fn concurrent_inserts_each_get_their_own_outcome(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"seed","n":1})).await;
    // The same id (in any case) from 20 requests at once: exactly one wins.
    let same: Vec<_> = (0..20).map(|i| app.insert("todo", json!({"id": if i % 2 == 0 { "dup" } else { "DUP" }, "n": i}))).collect();
    let results = futures::future::join_all(same).await;
    let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let conflicts = results.iter().filter(|r| r.status == StatusCode::CONFLICT).count();
    assert_eq!((created, conflicts), (1, 19), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    // A value Roost refuses (not a number) and one only the database refuses (PostgreSQL text cannot
    // hold NUL; SQLite can) fail alone; their neighbours are written.
    app.insert("todo", json!({"id":"s0","s":"text"})).await;
    let body = |i: usize| match i {
        7 => json!({"id": "bad", "n": "not a number"}),
        11 => json!({"id": "nul", "s": "nul\u{0}inside"}),
        _ => json!({"id": format!("ok{i}"), "n": i}),
    };
    let results = futures::future::join_all((0..20).map(|i| app.insert("todo", body(i)))).await;
    let nul_refused = app.backend == crate::helpers::Backend::Postgres;
    for (i, r) in results.iter().enumerate() {
        let expected = match i {
            7 => StatusCode::BAD_REQUEST,
            11 if nul_refused => StatusCode::BAD_REQUEST,
            _ => StatusCode::CREATED,
        };
        assert_eq!(r.status, expected, "{i}: {}", r.text);
    }
    assert_eq!(app.get("/tables/todo/bad").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.rows("/tables/todo?$filter=startswith(id, 'ok')&$top=100").await.len(), 18);
}

async fn reads_by_id_see_every_acknowledged_write(app: TestApp) {
    app.create_table("todo", json!({"soft_delete": true})).await;
    app.insert("todo", json!({"id":"c","n":1,"gone":"x"})).await;
    let read = || async { app.get("/tables/todo/c?__systemproperties=version").await };
    assert_eq!(read().await.json()["n"], 1);
    assert_eq!(read().await.json()["n"], 1, "a repeated read (possibly cached) is the same");
    app.call(Method::PATCH, "/tables/todo/c", Some(json!({"n":2}))).await;
    assert_eq!(read().await.json()["n"], 2, "an update is visible at once");
    let v = read().await.json()["__version"].as_str().unwrap().to_string();
    app.request(
        Method::PATCH,
        "/tables/todo/c",
        &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", &format!("\"{v}\""))],
        Some(r#"{"n":3}"#),
    )
    .await;
    assert_eq!(read().await.json()["n"], 3);
    assert_ne!(read().await.json()["__version"], v.as_str());
    app.call(Method::DELETE, "/tables/todo/c", None).await;
    assert_eq!(read().await.status, StatusCode::NOT_FOUND, "a delete is visible at once");
    app.call(Method::POST, "/tables/todo/c", None).await;
    assert_eq!(read().await.status, StatusCode::OK, "an undelete is visible at once");
    app.call(Method::PATCH, "/tables/todo/c", Some(json!({"added":"y"}))).await;
    assert_eq!(read().await.json()["added"], "y", "a new column is visible at once");
    let (ok, _, err) = app.cli(&["table", "drop-column", &app.tenant, "todo", "gone"]);
    assert!(ok, "{err}");
    assert!(read().await.json().get("gone").is_none(), "a column dropped by the CLI is gone at once");
}

async fn columns_that_queries_filter_and_order_on_get_indexed(app: TestApp) {
    app.create_table("items", json!({})).await;
    let items: Vec<Value> = (0..30).map(|i| json!({"price": i, "name": format!("n{i}"), "when": "2014-01-01T00:00:00Z"})).collect();
    app.seed("items", &items).await;
    let show = format!("/tenants/{}/tables/items", app.tenant);
    assert_eq!(app.manage(Method::GET, &show, None).await.json()["indexes"], json!([]));
    for i in 0..3 {
        let rows = app.rows(&format!("/tables/items?$filter=price ge {}&$orderby=name desc&$top=5", 10 + i)).await;
        assert_eq!(rows.len(), 5);
    }
    // Index builds run in the background; on PostgreSQL `CREATE INDEX CONCURRENTLY` also waits for
    // every older transaction of the (shared, busy) test database.
    let mut indexes = json!([]);
    for _ in 0..600 {
        // The tenant keeps querying, as a real one would (a failed build is retried on later uses).
        app.rows("/tables/items?$filter=price ge 1&$orderby=name desc&$top=1").await;
        indexes = app.manage(Method::GET, &show, None).await.json()["indexes"].clone();
        if indexes.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(indexes, json!(["price", "name"]));
    // Results are the same with the index, in both directions.
    let rows = app.rows("/tables/items?$filter=price ge 25&$orderby=price desc&$select=price").await;
    assert_eq!(rows, vec![json!({"price":29}), json!({"price":28}), json!({"price":27}), json!({"price":26}), json!({"price":25})]);
    // An indexed column can still be dropped.
    let r = app.manage(Method::DELETE, &format!("{show}/columns/price"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["indexes"], json!(["name"]));
}

async fn insert_returns_201_with_location_etag_and_requested_system_properties(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let r = app.call(Method::POST, "/tables/todo?__systemproperties=__createdAt", Some(json!({"text":"a","due":"2014-01-02T03:04:05Z"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let body = r.json();
    assert_eq!(keys(&body), ["__createdAt", "due", "id", "text"]);
    assert_eq!(body["due"], "2014-01-02T03:04:05.000Z");
    let id = body["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_uppercase(), "server ids are upper-case GUIDs");
    let loc = r.header("location").unwrap();
    assert_eq!(loc, format!("{}/t/{}/tables/todo/{id}", app.base, app.tenant));
    assert!(r.header("etag").is_none(), "no __version requested, no ETag");
    // Member order: the client's, then id, then system properties.
    let order: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(order, ["text", "due", "id", "__createdAt"]);

    let r = app.call(Method::POST, "/tables/todo?__systemproperties=*", Some(json!({"text":"b"}))).await;
    let body = r.json();
    assert_eq!(keys(&body), ["__createdAt", "__updatedAt", "__version", "id", "text"]);
    assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", body["__version"].as_str().unwrap()));
    assert!(body["__createdAt"].as_str().unwrap().ends_with('Z'));
    // X-Forwarded-Proto is honoured when trusted (R8).
    let r = app
        .request(
            Method::POST,
            "/tables/todo",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("x-forwarded-proto", "https")],
            Some(r#"{"id":"with space"}"#),
        )
        .await;
    assert!(r.header("location").unwrap().starts_with("https://"), "{:?}", r.header("location"));
    assert!(r.header("location").unwrap().ends_with("/tables/todo/with%20space"));
}

async fn insert_with_duplicate_id_returns_409(app: TestApp) {
    app.create_table("todo", json!({})).await;
    assert_eq!(app.insert("todo", json!({"id":"abc","n":1})).await.status, StatusCode::CREATED);
    let r = app.insert("todo", json!({"id":"abc","n":2})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json(), json!({"code":409,"error":"Error: Could not insert the item because an item with that id already exists."}));
    // Ids are case-insensitive, as in SQL Azure's collation.
    assert_eq!(app.insert("todo", json!({"id":"ABC"})).await.status, StatusCode::CONFLICT);
    let rows = app.rows("/tables/todo").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["n"], 1);
}

async fn insert_validation_follows_the_protocol_messages(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let cases: Vec<(&str, &str)> = vec![
        ("[1,2]", "Error: A single (valid) JSON object is expected."),
        (r#"{"ID":"x"}"#, "Error: Item identifiers can only be specified via the 'id' property."),
        (r#"{"Id":"x"}"#, "Error: Item identifiers can only be specified via the 'id' property."),
        (r#"{"id":5}"#, "Error: The value specified for property 'id' must be a string"),
        (r#"{"id":0}"#, "Error: The value specified for property 'id' must be a string"),
        (r#"{"id":"a+b"}"#, "Error: The value specified for property 'id' is invalid. An id must not contain any control characters or the characters \",+,?,\\,`."),
        (r#"{"id":"a/b"}"#, "Error: The value specified for property 'id' is invalid. An id must not contain any control characters or the characters \",+,?,\\,`."),
        (r#"{"id":".."}"#, "Error: The value specified for property 'id' is invalid. An id must not contain any control characters or the characters \",+,?,\\,`."),
        (r#"{"id":"a\u0001"}"#, "Error: The value specified for property 'id' is invalid. An id must not contain any control characters or the characters \",+,?,\\,`."),
        (r#"{"__createdAt":"x"}"#, "Error: The property '__createdAt' can not be set. Properties that begin with a '__' are considered system properties."),
        (r#"{"a-b":1}"#, "Error: 'a-b' is not a valid identifier. Identifiers must be under 128 characters in length, start with a letter or underscore, and can contain only alpha-numeric and underscore characters."),
        (r#"{"unsupported":{"arr":[1,3,4]}}"#, "Error: The value of property 'unsupported' is of type 'object' which is not a supported type."),
        (r#"{"list":[1]}"#, "Error: The value of property 'list' is of type 'object' which is not a supported type."),
        (r#"{"fresh":null}"#, "Error: Unable to insert a null value for new property 'fresh'"),
    ];
    for (body, expected) in cases {
        let r = app.request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.error(), expected, "{body}");
        assert_eq!(r.json()["code"], 400);
    }
    let long = "x".repeat(256);
    let r = app.insert("todo", json!({ "id": long })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.error(),
        "Error: Could not save item because it exceeds a maximum column size restriction. Note that indexed columns are restricted to 450 characters."
    );
    let long_name = format!("a{}", "b".repeat(128));
    assert_eq!(app.insert("todo", json!({ long_name: 1 })).await.status, StatusCode::BAD_REQUEST);
    // Malformed JSON and scalars.
    for body in ["{not json", "\"abc\"", "123"] {
        let r = app.request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    }
    // A text body is a string, not an object.
    let r = app.request(Method::POST, "/tables/todo", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "text/plain")], Some("{}")).await;
    assert_eq!(r.error(), "Error: A single (valid) JSON object is expected.");
    // Nothing was written by the failures.
    assert_eq!(app.rows("/tables/todo").await.len(), 0);
    // null and "" ids are dropped and a GUID is generated.
    for id in [json!(null), json!("")] {
        let r = app.insert("todo", json!({ "id": id, "n": 1 })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json()["id"].as_str().unwrap().len(), 36);
    }
}

async fn string_ids_accept_the_protocol_examples(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let long = "é".repeat(255);
    let examples = ["...", " .", "id with spaces", "'id' with single quotes", "100%", "a#b", "x&y=z", "مرحبا", "こんにちは", "Привет", long.as_str()];
    for id in examples {
        let r = app.insert("todo", json!({ "id": id, "v": id })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{id}: {}", r.text);
        assert_eq!(r.json()["id"], id);
        let enc: String = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string();
        let got = app.get(&format!("/tables/todo/{enc}")).await;
        assert_eq!(got.status, StatusCode::OK, "{id}: {}", got.text);
        assert_eq!(got.json()["v"], id);
        // The JS client's refresh(): a filter with '' doubled.
        let filter = format!("id eq '{}'", id.replace('\'', "''"));
        let enc = percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC).to_string();
        let rows = app.rows(&format!("/tables/todo?$filter={enc}")).await;
        assert_eq!(ids(&rows), [id], "{filter}");
    }
}

async fn integer_id_tables_generate_ids_and_refuse_client_ids(app: TestApp) {
    app.create_table("legacy", json!({"id_kind":"integer"})).await;
    let a = app.insert("legacy", json!({"name":"a"})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json(), json!({"name":"a","id":1}));
    assert!(a.header("location").unwrap().ends_with("/tables/legacy/1"));
    // Falsy ids are dropped (E2E "Invalid id: zero/empty/null").
    for id in [json!(0), json!(""), json!(null)] {
        let r = app.insert("legacy", json!({"id": id, "name":"z"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(r.json()["id"].as_i64().unwrap() > 1);
    }
    let r = app.insert("legacy", json!({"id": 7, "name":"x"})).await;
    assert_eq!(r.error(), "Error: A value cannot be specified for property 'id'");
    let r = app.insert("legacy", json!({"id": "7"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/tables/legacy/abc").await;
    assert_eq!(r.error(), "Error: The value specified for 'id' must be a number.");
    let r = app.get("/tables/legacy/1?__systemproperties=*").await;
    assert_eq!(r.json(), json!({"id":1,"name":"a"}), "int tables have no system properties");
    // Loose id comparison on update: "1" equals 1.
    let r = app.call(Method::PATCH, "/tables/legacy/1", Some(json!({"id":"1","name":"b"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json(), json!({"name":"b","id":1}));
    let r = app.call(Method::PATCH, "/tables/legacy/1", Some(json!({"id":2,"name":"b"}))).await;
    assert_eq!(r.error(), "Error: When specified in the body, 'id' must match the id specified in the url.");
    assert_eq!(app.call(Method::DELETE, "/tables/legacy/1", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::DELETE, "/tables/legacy/1", None).await.error(), "Error: An item with id '1' does not exist.");
}

async fn read_by_id_returns_the_object_etag_and_304(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"x1","text":"t"})).await;
    let r = app.get("/tables/todo/x1").await;
    assert_eq!(r.json(), json!({"id":"x1","text":"t"}));
    assert!(r.header("etag").is_none());
    let r = app.get("/tables/todo/x1?__systemproperties=version").await;
    let etag = r.header("etag").unwrap();
    assert_eq!(etag, format!("\"{}\"", r.json()["__version"].as_str().unwrap()));
    let r =
        app.request(Method::GET, "/tables/todo/x1?__systemproperties=version", &[("X-ZUMO-APPLICATION", &app.app_key), ("If-None-Match", &etag)], None).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.text.is_empty());
    let r = app.get("/tables/todo/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({"code":404,"error":"Error: An item with id 'nope' does not exist."}));
    // $filter and $select are ANDed with the id.
    assert_eq!(app.get("/tables/todo/x1?$filter=text eq 'other'").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/tables/todo/x1?$select=text").await.json(), json!({"text":"t"}));
    // The JS client's refresh() sends a GET with a body; it is ignored.
    let r = app.request(Method::GET, "/tables/todo/x1", &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json")], Some("{\"x\":1}")).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn read_by_id_refuses_paging_options_and_bad_ids(app: TestApp) {
    app.create_table("todo", json!({})).await;
    for q in ["$top=1", "$skip=1", "$orderby=id", "$inlinecount=allpages"] {
        let r = app.get(&format!("/tables/todo/x?{q}")).await;
        assert_eq!(r.error(), "Error: Query options $orderby, $inlinecount, $skip and $top cannot be applied to id queries.", "{q}");
    }
    let r = app.get("/tables/todo/a%2Bb").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn rows_without_orderby_come_back_in_insertion_order(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let names = ["zeta", "alpha", "Mike", "bravo", "7", "echo"];
    for n in names {
        app.insert("todo", json!({"id": n, "n": 1})).await;
    }
    assert_eq!(ids(&app.rows("/tables/todo").await), names);
    assert_eq!(ids(&app.rows("/tables/todo?$top=3&$skip=2").await), &names[2..5]);
    app.create_table("legacy", json!({"id_kind":"integer"})).await;
    for n in names {
        app.insert("legacy", json!({"name": n})).await;
    }
    let rows = app.rows("/tables/legacy").await;
    let got: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(got, names);
}

async fn top_skip_and_inlinecount_follow_the_limits(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let items: Vec<Value> = (0..60).map(|i| json!({"i": i})).collect();
    app.seed("todo", &items).await;
    assert_eq!(app.rows("/tables/todo").await.len(), 50, "$top defaults to 50");
    assert_eq!(app.rows("/tables/todo?$top=1000").await.len(), 60);
    assert_eq!(app.rows("/tables/todo?$top=0").await.len(), 0);
    assert_eq!(app.rows("/tables/todo?$skip=55").await.len(), 5);
    assert_eq!(app.rows("/tables/todo?$skip=-5&$top=2").await.len(), 2, "a negative $skip is ignored");
    let cases = [
        ("$top=1001", "Error: The value of the $top query option cannot exceed 1000."),
        ("$top=-1", "Error: The value of the $top query option must be greater or equal to 0."),
        ("$top=abc", "Error: The value specified for '$top' must be a number."),
        ("$top=1.5", "Error: The value specified for '$top' must be a number."),
        ("$skip=x", "Error: The value specified for '$skip' must be a number."),
        ("$inlinecount=some", "Error: The value specified for inlinecount must be either 'allpages' or 'none'."),
    ];
    for (q, m) in cases {
        let r = app.get(&format!("/tables/todo?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.error(), m, "{q}");
    }
    let r = app.get("/tables/todo?$filter=i ge 10&$top=5&$skip=2&$inlinecount=allpages&$orderby=i desc").await;
    let body = r.json();
    assert_eq!(body["count"], 50);
    let got: Vec<i64> = body["results"].as_array().unwrap().iter().map(|r| r["i"].as_i64().unwrap()).collect();
    assert_eq!(got, [57, 56, 55, 54, 53]);
    assert!(app.get("/tables/todo?$inlinecount=none").await.json().is_array());
}

async fn select_returns_exactly_the_named_columns(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"a","Title":"t","price":3,"done":true})).await;
    let rows = app.rows("/tables/todo?$select=title,PRICE").await;
    assert_eq!(rows, vec![json!({"Title":"t","price":3})], "stored casing, no id added");
    let rows = app.rows("/tables/todo?$select=title&__systemproperties=createdAt").await;
    assert_eq!(keys(&rows[0]), ["Title", "__createdAt"]);
    let rows = app.rows("/tables/todo?$select=__version,id").await;
    assert_eq!(keys(&rows[0]), ["__version", "id"]);
    // Unknown column under dynamic schema: [].
    assert_eq!(app.rows("/tables/todo?$select=nope").await, Vec::<Value>::new());
    let r = app.get("/tables/todo?$select=a;b").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn update_writes_only_the_patch_and_echoes_it(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"u1","text":"a","n":1})).await;
    let before = app.get("/tables/todo/u1?__systemproperties=*").await.json();
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!({"n":2,"when":"2015-05-05T05:05:05.5Z"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 5.5Z is not the strict date form, so it stays a string.
    assert_eq!(r.json(), json!({"n":2,"when":"2015-05-05T05:05:05.5Z","id":"u1"}));
    let after = app.get("/tables/todo/u1?__systemproperties=*").await.json();
    assert_eq!(after["text"], "a");
    assert_eq!(after["n"], 2);
    assert_ne!(after["__version"], before["__version"], "every write bumps the version");
    assert_eq!(after["__createdAt"], before["__createdAt"]);
    // Update with only id is a success.
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!({"id":"u1"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    // Requested system properties come back.
    let r = app.call(Method::PATCH, "/tables/todo/u1?__systemproperties=updatedAt,version", Some(json!({"n":3}))).await;
    assert_eq!(keys(&r.json()), ["__updatedAt", "__version", "id", "n"]);
    assert!(r.header("etag").is_some());
    // Missing row.
    let r = app.call(Method::PATCH, "/tables/todo/missing", Some(json!({"n":3}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "Error: An item with id 'missing' does not exist.");
}

async fn update_validation_messages(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"u1","text":"a"})).await;
    let r = app.call(Method::PATCH, "/tables/todo", Some(json!({"n":2}))).await;
    assert_eq!(r.error(), "Error: An id value must be specified in the URL for an update operation.");
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!({"id":"u2"}))).await;
    assert_eq!(r.error(), "Error: When specified in the body, 'id' must match the id specified in the url.");
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!([1]))).await;
    assert_eq!(r.error(), "Error: A single (valid) JSON object is expected.");
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!({"__version":"x"}))).await;
    assert_eq!(r.error(), "Error: The property '__version' can not be set. Properties that begin with a '__' are considered system properties.");
    let r = app.call(Method::PATCH, "/tables/todo/u1", Some(json!({"Id":"u1"}))).await;
    assert_eq!(r.error(), "Error: Item identifiers can only be specified via the 'id' property.");
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/u1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", "nope")],
            Some("{}"),
        )
        .await;
    assert_eq!(r.error(), "Error: Invalid 'if-match' header.");
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/u1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", "\"a\", \"b\"")],
            Some("{}"),
        )
        .await;
    assert_eq!(r.error(), "Error: Only single etag 'if-match' headers are supported.");
}

async fn if_match_conflicts_return_412_with_the_server_item(app: TestApp) {
    app.create_table("todo", json!({"soft_delete": true})).await;
    app.insert("todo", json!({"id":"c1","text":"a"})).await;
    let v1 = app.get("/tables/todo/c1?__systemproperties=version").await.json()["__version"].as_str().unwrap().to_string();
    let hdr = |v: &str| format!("\"{v}\"");
    // Matching version: 200, new version echoed with its ETag.
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/c1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", &hdr(&v1))],
            Some(r#"{"text":"b"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v2 = r.json()["__version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(r.header("etag").unwrap(), hdr(&v2));
    // Stale version: 412 with the bare server item and its ETag.
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/c1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", &hdr(&v1))],
            Some(r#"{"text":"c"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let server = r.json();
    assert_eq!(server["text"], "b");
    assert_eq!(server["__version"], v2.as_str());
    assert_eq!(server["__deleted"], false);
    assert!(server.get("code").is_none());
    assert_eq!(r.header("etag").unwrap(), hdr(&v2));
    // A well-formed etag that is not 8 bytes of base64 conflicts instead of failing.
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/c1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", "\"notbase64!\"")],
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    // `*` means no check.
    let r = app
        .request(
            Method::PATCH,
            "/tables/todo/c1",
            &[("X-ZUMO-APPLICATION", &app.app_key), ("content-type", "application/json"), ("If-Match", "*")],
            Some(r#"{"text":"d"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Delete with a stale version: 412; with the current one: 204.
    let r = app.request(Method::DELETE, "/tables/todo/c1", &[("X-ZUMO-APPLICATION", &app.app_key), ("If-Match", &hdr(&v1))], None).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let current = app.get("/tables/todo/c1?__systemproperties=version").await.json()["__version"].as_str().unwrap().to_string();
    let r = app.request(Method::DELETE, "/tables/todo/c1", &[("X-ZUMO-APPLICATION", &app.app_key), ("If-Match", &hdr(&current))], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn delete_is_hard_on_plain_tables(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"d1"})).await;
    let r = app.call(Method::DELETE, "/tables/todo/d1", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    assert_eq!(app.get("/tables/todo/d1?__includedeleted=true").await.status, StatusCode::NOT_FOUND);
    let r = app.call(Method::DELETE, "/tables/todo/d1", None).await;
    assert_eq!(r.json(), json!({"code":404,"error":"Error: An item with id 'd1' does not exist."}));
    let r = app.call(Method::DELETE, "/tables/todo", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.call(Method::POST, "/tables/todo/d1", None).await;
    assert_eq!(r.error(), "Error: The undelete operation is not supported on this table.");
    // Re-inserting the id works after a hard delete.
    assert_eq!(app.insert("todo", json!({"id":"d1"})).await.status, StatusCode::CREATED);
}

async fn soft_delete_hides_rows_and_undelete_restores_them(app: TestApp) {
    app.create_table("todo", json!({"soft_delete": true})).await;
    app.seed("todo", &[json!({"id":"s1","n":1}), json!({"id":"s2","n":2})]).await;
    assert_eq!(app.call(Method::DELETE, "/tables/todo/s1", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(ids(&app.rows("/tables/todo").await), ["s2"]);
    assert_eq!(app.get("/tables/todo/s1").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::DELETE, "/tables/todo/s1", None).await.status, StatusCode::NOT_FOUND, "already deleted");
    let rows = app.rows("/tables/todo?__includedeleted=true&__systemproperties=deleted").await;
    assert_eq!(rows, vec![json!({"id":"s1","n":1,"__deleted":true}), json!({"id":"s2","n":2,"__deleted":false})]);
    // A PATCH on a deleted row is a 404 (the original's 412 quirk is deliberately not reproduced).
    assert_eq!(app.call(Method::PATCH, "/tables/todo/s1", Some(json!({"n":5}))).await.status, StatusCode::NOT_FOUND);
    // Undelete refuses content, then restores.
    let r = app.call(Method::POST, "/tables/todo/s1", Some(json!({"n":1}))).await;
    assert_eq!(r.error(), "Error: An undelete request must not have content.");
    let r = app.call(Method::POST, "/tables/todo/s1?__systemproperties=version", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.json();
    assert_eq!(body["id"], "s1");
    assert_eq!(body["__deleted"], false);
    assert!(body["__version"].is_string());
    assert_eq!(ids(&app.rows("/tables/todo").await), ["s1", "s2"]);
    assert_eq!(app.call(Method::POST, "/tables/todo/zz", None).await.status, StatusCode::NOT_FOUND);
    // Filtering on the system column.
    assert_eq!(ids(&app.rows("/tables/todo?$filter=__deleted eq false").await), ["s1", "s2"]);
}

async fn system_properties_parameter_is_parsed_strictly(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"p"})).await;
    let valid = [
        ("__SYSTEMPROPERTIES=__createdAt, updatedat", vec!["__createdAt", "__updatedAt", "id"]),
        ("__systemproperties=*", vec!["__createdAt", "__updatedAt", "__version", "id"]),
        ("__systemProperties= *  ", vec!["__createdAt", "__updatedAt", "__version", "id"]),
        ("__systemproperties=VERSION,,", vec!["__version", "id"]),
        ("__systemproperties=__deleted", vec!["id"]),
        ("__systemproperties=", vec!["id"]),
    ];
    for (q, expected) in valid {
        let r = app.get(&format!("/tables/todo/p?{q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(keys(&r.json()), expected, "{q}");
    }
    for (q, entry) in [
        ("__systemProperties=__createdAt __updatedAt", "__createdAt __updatedAt"),
        ("__systemproperties=*,version", "*"),
        ("__systemproperties=_version", "_version"),
        ("__systemproperties=__created", "__created"),
    ] {
        let r = app.get(&format!("/tables/todo?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.error(), format!("Error: The value '{entry}' is not a supported system property."), "{q}");
    }
    // Allowed on every verb.
    let r = app.call(Method::DELETE, "/tables/todo/p?__systemproperties=bogus", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn dynamic_schema_adds_typed_columns_case_insensitively(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"a","postId":"p1","score":1.5,"ok":true,"at":"2014-01-02T03:04:05.123Z"})).await;
    let t = app.manage(Method::GET, &format!("/tenants/{}/tables/todo", app.tenant), None).await.json();
    let types: Vec<(String, String)> =
        t["columns"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap().to_string(), c["type"].as_str().unwrap().to_string())).collect();
    for (n, ty) in [("postId", "string"), ("score", "number"), ("ok", "boolean"), ("at", "date")] {
        assert!(types.contains(&(n.to_string(), ty.to_string())), "{n}: {types:?}");
    }
    // `postid` addresses `postId`; rows come back with the stored casing.
    let r = app.insert("todo", json!({"id":"b","postid":"p2","SCORE":2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let rows = app.rows("/tables/todo?$filter=POSTID eq 'P2'").await;
    assert_eq!(rows, vec![json!({"id":"b","postId":"p2","score":2,"ok":null,"at":null})]);
    // New columns arrive on updates too; a `__` name cannot be added.
    let r = app.call(Method::PATCH, "/tables/todo/a", Some(json!({"extra":"x"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.get("/tables/todo/a?$select=extra").await.json(), json!({"extra":"x"}));
    // A table that gets many columns at once.
    let wide: serde_json::Map<String, Value> = (0..40).map(|i| (format!("c{i}"), json!(i))).collect();
    assert_eq!(app.insert("todo", Value::Object(wide)).await.status, StatusCode::CREATED);
}

async fn dynamic_schema_disabled_refuses_unknown_columns(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"a","known":"x"})).await;
    let r = app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"dynamic_schema": false}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.insert("todo", json!({"unknown":"x"})).await;
    assert_eq!(r.error(), "Error: Could not save item because it contains a column that is not in the table schema.");
    let r = app.get("/tables/todo?$filter=unknown eq 1").await;
    assert_eq!(r.error(), "Error: Invalid column name specified in query.");
    assert_eq!(app.insert("todo", json!({"known":"y"})).await.status, StatusCode::CREATED);
    // And under dynamic schema an unknown column in a query gives [] (even with $inlinecount).
    app.manage(Method::PATCH, &format!("/tenants/{}/settings", app.tenant), Some(json!({"dynamic_schema": true}))).await;
    let r = app.get("/tables/todo?$filter=unknown eq 1&$inlinecount=allpages").await;
    assert_eq!(r.json(), json!([]));
    assert_eq!(app.rows("/tables/todo?$orderby=unknown").await, Vec::<Value>::new());
}

async fn failed_type_conversion_is_400_bad_request(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"a","n":1,"flag":true,"when":"2014-01-02T03:04:05Z","s":"x"})).await;
    for body in [json!({"n":"not a number"}), json!({"flag":"maybe"}), json!({"when":"not a date"}), json!({"when":5})] {
        let r = app.insert("todo", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.json(), json!({"code":400,"error":"Error: Bad request."}), "{body}");
    }
    // Compatible values convert: a numeric string into a number column, a number into a string column.
    let r = app.insert("todo", json!({"id":"b","n":"42","s":7,"flag":1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/tables/todo/b?$select=n,s,flag").await.json(), json!({"n":42,"s":"7","flag":true}));
}

async fn numbers_are_doubles_and_dates_round_trip_with_milliseconds(app: TestApp) {
    app.create_table("todo", json!({})).await;
    let r = app
        .insert("todo", json!({"id":"n","big":1152921504606846975_i64,"neg":-0.5,"tiny":1e-300,"huge":1.7e308,"d1":"0001-01-01T00:00:00.000Z","d2":"9999-12-31T23:59:59.999Z","ms":"/Date(1388631845123)/"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["ms"], "2014-01-02T03:04:05.123Z", "MS-JSON dates are converted");
    let row = app.get("/tables/todo/n").await.json();
    assert_eq!(row["big"].as_f64().unwrap(), 1152921504606847000.0);
    assert_eq!(row["neg"], -0.5);
    assert_eq!(row["tiny"], 1e-300);
    assert_eq!(row["huge"], 1.7e308);
    assert_eq!(row["d1"], "0001-01-01T00:00:00.000Z");
    assert_eq!(row["d2"], "9999-12-31T23:59:59.999Z");
    assert_eq!(ids(&app.rows("/tables/todo?$filter=d1 lt datetime'1000-01-01T00:00:00Z' and d2 gt datetime'9999-12-31T23:59:59.998Z'").await), ["n"]);
    assert_eq!(ids(&app.rows("/tables/todo?$filter=year(d1) eq 1 and year(d2) eq 9999 and month(d2) eq 12").await), ["n"]);
}

async fn custom_and_reserved_query_parameters(app: TestApp) {
    app.create_table("todo", json!({})).await;
    app.insert("todo", json!({"id":"a"})).await;
    assert_eq!(app.rows("/tables/todo?custom=1&other=a+b").await.len(), 1);
    for name in ["$expand", "$Filter", "$format", "__foo"] {
        let r = app.get(&format!("/tables/todo?{name}=x")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(r.error(), format!("Error: Invalid query parameter name '{name}'. Custom query parameter names must not start with $ or __."));
    }
    // OData options are ignored on non-GET verbs.
    let r = app.call(Method::POST, "/tables/todo?$filter=((", Some(json!({"x":1}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}
