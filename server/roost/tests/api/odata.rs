//! The OData subset over HTTP (protocol.md §3): every function of §3.4, the operators of §3.5, the
//! literal forms of §3.3 and R5, ordering on expressions, and what real clients emit (§3.7).

use crate::helpers::{ids, TestApp};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use serde_json::json;

crate::on_both_backends!(
    every_function_and_operator_filters_as_specified,
    literal_forms_parse,
    orderby_accepts_expressions_and_is_case_insensitive,
    parse_errors_are_400_with_index,
    real_client_queries_parse
);

async fn movies(app: &TestApp) {
    app.create_table("movies", json!({})).await;
    app.seed(
        "movies",
        &[
            json!({"id":"m1","title":"The Godfather","year":1972,"rating":9.2,"best":true,"released":"1972-03-24T10:20:30.000Z","tag":"a_b"}),
            json!({"id":"m2","title":"Pulp Fiction ","year":1994,"rating":8.9,"best":false,"released":"1994-10-14T00:00:00.000Z","tag":"a%b"}),
            json!({"id":"m3","title":"the dark knight","year":2008,"rating":9.0,"best":true,"released":"2008-07-18T23:59:59.999Z","tag":"zzz"}),
            json!({"id":"m4","title":"Amélie","year":2001,"rating":8.3,"best":false,"released":"2001-04-25T12:00:00.000Z","tag":null}),
        ],
    )
    .await;
}

async fn filter(app: &TestApp, f: &str) -> Vec<String> {
    let enc = utf8_percent_encode(f, NON_ALPHANUMERIC).to_string();
    let r = app.get(&format!("/tables/movies?$filter={enc}")).await;
    assert_eq!(r.status, StatusCode::OK, "{f}: {}", r.text);
    ids(r.json().as_array().unwrap_or(&vec![]))
}

async fn every_function_and_operator_filters_as_specified(app: TestApp) {
    movies(&app).await;
    let cases: &[(&str, &[&str])] = &[
        // Comparison and logic; strings compare case-insensitively (R3).
        ("title eq 'the godfather'", &["m1"]),
        ("title ne 'THE GODFATHER'", &["m2", "m3", "m4"]),
        ("year gt 1994", &["m3", "m4"]),
        ("year ge 1994", &["m2", "m3", "m4"]),
        ("year lt 1994", &["m1"]),
        ("year le 1994", &["m1", "m2"]),
        ("(year ge 1990) and (year lt 2005)", &["m2", "m4"]),
        ("year lt 1980 or year gt 2005", &["m1", "m3"]),
        ("not (year lt 2000)", &["m3", "m4"]),
        ("tag eq null", &["m4"]),
        ("tag ne null", &["m1", "m2", "m3"]),
        // Booleanisation.
        ("best", &["m1", "m3"]),
        ("not best", &["m2", "m4"]),
        ("best eq true", &["m1", "m3"]),
        ("best eq false", &["m2", "m4"]),
        ("(year gt 2000) eq true", &["m3", "m4"]),
        ("(year gt 2000) eq false", &["m1", "m2"]),
        ("true", &["m1", "m2", "m3", "m4"]),
        ("true eq false", &[]),
        // Arithmetic; div is floating point; mod.
        ("year add 1 eq 1973", &["m1"]),
        ("year sub 2 eq 1992", &["m2"]),
        ("rating mul 10 eq 92", &["m1"]),
        ("year div 4 eq 493", &["m1"]),
        ("year div 8 eq 246.5", &["m1"]),
        ("year mod 4 eq 0", &["m1", "m3"]),
        ("(0 sub year) lt -2000", &["m3", "m4"]),
        // String functions.
        ("substringof('dark', title)", &["m3"]),
        ("substringof('DARK', title)", &["m3"]),
        ("startswith(title, 'the')", &["m1", "m3"]),
        ("endswith(title, 'knight')", &["m3"]),
        ("startswith(tag, 'a_')", &["m1", "m2"]),
        ("indexof(title, 'god') eq 4", &["m1"]),
        ("indexof(title, 'zzz') eq -1", &["m1", "m2", "m3", "m4"]),
        ("length(title) eq 13", &["m1", "m2"]),
        ("length(title) eq 6", &["m4"]),
        ("tolower(title) eq 'the dark knight'", &["m3"]),
        ("toupper(title) eq 'THE DARK KNIGHT'", &["m3"]),
        ("trim(title) eq 'Pulp Fiction'", &["m2"]),
        ("concat(title, 'x') eq 'Amélie' ", &[]),
        ("concat(title, '!') eq 'amélie!'", &["m4"]),
        ("concat('y:', year) eq 'y:1994'", &["m2"]),
        ("replace(title, ' ', '_') eq 'the_dark_knight'", &["m3"]),
        ("substring(title, 4) eq 'Godfather'", &["m1"]),
        ("substring(title, 0, 4) eq 'Pulp'", &["m2"]),
        // Date functions on UTC values.
        ("year(released) eq 1994", &["m2"]),
        ("month(released) eq 3", &["m1"]),
        ("day(released) eq 18", &["m3"]),
        ("hour(released) eq 23", &["m3"]),
        ("minute(released) eq 20", &["m1"]),
        ("second(released) eq 59", &["m3"]),
        ("released gt datetime'2000-01-01T00:00:00Z'", &["m3", "m4"]),
        ("released eq datetime'1994-10-14T00:00:00.000Z'", &["m2"]),
        // Math functions.
        ("floor(rating) eq 9", &["m1", "m3"]),
        ("ceiling(rating) eq 9", &["m2", "m3", "m4"]),
        ("round(rating) eq 8", &["m4"]),
        ("round(rating) eq 9", &["m1", "m2", "m3"]),
        ("floor(0 sub rating) eq -10", &["m1"]),
        // Member access: only the last segment is used.
        ("movies/year eq 1972", &["m1"]),
        // System column.
        ("__createdAt gt datetime'2000-01-01T00:00:00Z'", &["m1", "m2", "m3", "m4"]),
    ];
    for (f, expected) in cases {
        assert_eq!(filter(&app, f).await, *expected, "{f}");
    }
}

async fn literal_forms_parse(app: TestApp) {
    movies(&app).await;
    let cases: &[(&str, &[&str])] = &[
        ("year eq 1972L", &["m1"]),
        ("year eq 1972l", &["m1"]),
        ("rating eq 9.2f", &["m1"]),
        ("rating eq 9.2M", &["m1"]),
        ("rating eq 9.2d", &["m1"]),
        ("rating eq 92e-1", &["m1"]),
        ("year eq 1.972E3", &["m1"]),
        ("year gt -1", &["m1", "m2", "m3", "m4"]),
        ("id eq guid'm2'", &["m2"]),
        ("released eq datetimeoffset'1972-03-24T12:20:30+02:00'", &["m1"]),
        ("released eq datetimeoffset'1972-03-24T10:20:30.0000000Z'", &["m1"]),
        ("released lt datetimeoffset'1980-01-01'", &["m1"]),
        ("title eq 'it''s'", &[]),
        ("year gt 1e+21", &[]),
    ];
    for (f, expected) in cases {
        assert_eq!(filter(&app, f).await, *expected, "{f}");
    }
}

async fn orderby_accepts_expressions_and_is_case_insensitive(app: TestApp) {
    movies(&app).await;
    let order = |q: &str| format!("/tables/movies?$orderby={}", utf8_percent_encode(q, NON_ALPHANUMERIC));
    assert_eq!(ids(&app.rows(&order("year desc")).await), ["m3", "m4", "m2", "m1"]);
    assert_eq!(ids(&app.rows(&order("title")).await), ["m4", "m2", "m3", "m1"], "case-insensitive: Amélie, Pulp, the dark, The God");
    assert_eq!(ids(&app.rows(&order("length(title) desc, year")).await), ["m3", "m1", "m2", "m4"]);
    assert_eq!(ids(&app.rows(&order("best desc, rating")).await), ["m3", "m1", "m4", "m2"]);
    assert_eq!(ids(&app.rows(&order("tag")).await)[0], "m4", "NULLs first");
    assert_eq!(ids(&app.rows(&order("toupper(title) desc")).await), ["m1", "m3", "m2", "m4"]);
    assert_eq!(ids(&app.rows(&format!("{}&$top=2&$skip=1", order("year"))).await), ["m2", "m4"]);
}

async fn parse_errors_are_400_with_index(app: TestApp) {
    movies(&app).await;
    let cases = [
        ("a #", "Error: Invalid query specified. Error: Syntax error '#' (at index 2)"),
        ("title eq 'x", "Error: Invalid query specified. Error: Unterminated string literal (at index 11)"),
        ("nofunc(title)", "Error: Invalid query specified. Error: Unknown identifier 'nofunc' (at index 0)"),
        ("length(title, 1) eq 1", "Error: Invalid query specified. Error: Function 'length' requires 1 parameter. (at index 0)"),
        ("released eq datetime'2001-01-01'", "Error: Invalid query specified. Error: Invalid 'datetime' type creation expression (at index 12)"),
    ];
    for (f, m) in cases {
        let r = app.get(&format!("/tables/movies?$filter={}", utf8_percent_encode(f, NON_ALPHANUMERIC))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{f}");
        assert_eq!(r.error(), m, "{f}");
    }
    // Parse errors win over authorization (§1.1 step 6).
    let r = app.request(reqwest::Method::GET, "/tables/movies?$filter=%23", &[], None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.get("/tables/movies?$orderby=title%20sideways").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn real_client_queries_parse(app: TestApp) {
    movies(&app).await;
    // What MobileServices.Web.js emits: fully parenthesised, (0 sub x), `in` expansion, dates, getters.
    let cases: &[(&str, &[&str])] = &[
        ("((year ge 1990) and (year lt 2000))", &["m2"]),
        ("((year eq 1972) or (year eq 2008))", &["m1", "m3"]),
        ("(true eq false)", &[]),
        ("(indexof(title,'Fiction') ge 0)", &["m2"]),
        ("((month(released) sub 1) eq 2)", &["m1"]),
        ("((year(released) sub 1900) eq 108)", &["m3"]),
        ("(day(released) eq 25)", &["m4"]),
        ("(released ge datetime'2001-01-01T00:00:00.000Z')", &["m3", "m4"]),
        ("(substring(title,0,3) eq 'The')", &["m1", "m3"]),
        ("(floor(rating) eq 8)", &["m2", "m4"]),
        ("(not best)", &["m2", "m4"]),
    ];
    for (f, expected) in cases {
        assert_eq!(filter(&app, f).await, *expected, "{f}");
    }
}
