//! Smoke test of the services `scripts/services.sh` starts: a real PostgreSQL, Redis and
//! S3-compatible server (s3s-fs), reached over real connections with the crates the pipeline
//! uses. A service that is down fails the test; nothing here skips.

use std::env;

use aws_sdk_s3::primitives::ByteStream;
use fred::prelude::{ClientLike, Config, KeysInterface};

fn var(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn postgres_answers_and_keeps_a_row() {
    let url = var(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let pool = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e} (start it with scripts/services.sh)"));
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("CREATE TEMPORARY TABLE smoke (id int PRIMARY KEY, note text) ON COMMIT DROP")
        .execute(&mut *tx)
        .await
        .expect("create");
    sqlx::query("INSERT INTO smoke VALUES ($1, $2)")
        .bind(7)
        .bind("sessionflow")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let note: String = sqlx::query_scalar("SELECT note FROM smoke WHERE id = $1")
        .bind(7)
        .fetch_one(&mut *tx)
        .await
        .expect("select");
    assert_eq!(note, "sessionflow");
    tx.rollback().await.expect("rollback");
}

#[tokio::test]
async fn redis_answers_and_keeps_a_key() {
    let url = var("REDIS_URL", "redis://127.0.0.1:6379");
    let client = fred::prelude::Builder::from_config(Config::from_url(&url).expect("REDIS_URL"))
        .build()
        .expect("client");
    client
        .init()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url}: {e} (start it with scripts/services.sh)"));
    let key = unique("sessionflow:smoke");
    let _: () = client
        .set(
            &key,
            "ok",
            Some(fred::types::Expiration::EX(60)),
            None,
            false,
        )
        .await
        .expect("set");
    let value: String = client.get(&key).await.expect("get");
    assert_eq!(value, "ok");
    let _: i64 = client.del(&key).await.expect("del");
    client.quit().await.expect("quit");
}

#[tokio::test]
async fn s3_server_stores_and_returns_an_object() {
    let endpoint = var("AWS_ENDPOINT_URL", "http://127.0.0.1:9000");
    let shared = aws_config::from_env()
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(var("AWS_REGION", "us-east-1")))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            var("AWS_ACCESS_KEY_ID", "sessionflow"),
            var("AWS_SECRET_ACCESS_KEY", "sessionflow-secret"),
            None,
            None,
            "sessionflow-test",
        ))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let bucket = unique("smoke");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("S3 at {endpoint}: {e:?} (start it with scripts/services.sh)"));
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    s3.put_object()
        .bucket(&bucket)
        .key("transcripts/w/s/raw.jsonl")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("transcripts/w/s/raw.jsonl")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "object comes back byte for byte");
    s3.delete_object()
        .bucket(&bucket)
        .key("transcripts/w/s/raw.jsonl")
        .send()
        .await
        .expect("delete object");
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("delete bucket");
}
