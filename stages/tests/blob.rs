//! One suite for every BlobStore: the local directory, and S3 against the real s3s-fs server
//! that `scripts/services.sh` starts (`AWS_ENDPOINT_URL` and credentials from the environment,
//! with that script's values as defaults).

// These tests talk to S3: without the feature they would have nothing to run, so the suite
// refuses to build rather than skip them (scripts/test.sh builds with --all-features).
#[cfg(not(feature = "s3"))]
compile_error!("the S3 tests need the `s3` feature: cargo test --all-features");

use bytes::Bytes;
use futures::StreamExt;
use sessionflow_protocol::ids::Id;
use sessionflow_stages::blob::{
    self, BlobError, BlobStore, LocalBlobs, S3Blobs, parsed_key, raw_transcript_key,
};

async fn suite(store: &dyn BlobStore) {
    let key = raw_transcript_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "s1").unwrap(),
    );
    assert_eq!(key, "transcripts/w1/s1/raw.jsonl");
    assert_eq!(
        parsed_key(
            &Id::parse("workspace_id", "w1").unwrap(),
            &Id::parse("session_id", "s1").unwrap()
        ),
        "transcripts/w1/s1/parsed.json"
    );

    // Missing objects are NotFound, not errors of another kind.
    match store.get(&key).await {
        Err(BlobError::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("{}: expected NotFound, got {other:?}", store.describe()),
    }
    assert_eq!(store.size(&key).await.unwrap(), None);

    // A 6 MB object comes back byte for byte.
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    store.put(&key, Bytes::from(big.clone())).await.unwrap();
    assert_eq!(store.size(&key).await.unwrap(), Some(6_000_000));
    assert!(store.get(&key).await.unwrap() == big);

    // Putting again replaces.
    store.put(&key, Bytes::from_static(b"{}\n")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"{}\n"));

    // An empty object is an object.
    let empty = parsed_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "s1").unwrap(),
    );
    store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.size(&empty).await.unwrap(), Some(0));

    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(matches!(
        store.get(&key).await,
        Err(BlobError::NotFound { .. })
    ));
    store.delete(&empty).await.unwrap();

    // A streamed body of 20 MB (several multipart parts on S3) arrives whole.
    let streamed = parsed_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "streamed").unwrap(),
    );
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..40u32)
        .map(|i| Ok(Bytes::from(vec![(i % 251) as u8; 500_000])))
        .collect();
    let size = store
        .put_stream(&streamed, futures::stream::iter(chunks).boxed())
        .await
        .unwrap();
    assert_eq!(size, 20_000_000);
    let back = store.get(&streamed).await.unwrap();
    assert_eq!(back.len(), 20_000_000);
    assert!(back[..500_000].iter().all(|&b| b == 0) && back[19_500_000..].iter().all(|&b| b == 39));

    // A small streamed body, and a rename over an existing key.
    let small = raw_transcript_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "small").unwrap(),
    );
    let chunks = vec![
        Ok(Bytes::from_static(b"{\"a\":1}\n")),
        Ok(Bytes::from_static(b"{}\n")),
    ];
    assert_eq!(
        store
            .put_stream(&small, futures::stream::iter(chunks).boxed())
            .await
            .unwrap(),
        11
    );
    store.rename(&small, &streamed).await.unwrap();
    assert_eq!(
        store.get(&streamed).await.unwrap(),
        Bytes::from_static(b"{\"a\":1}\n{}\n")
    );
    assert!(matches!(
        store.get(&small).await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(matches!(
        store.rename(&small, &streamed).await,
        Err(BlobError::NotFound { .. })
    ));

    // A body that fails midway leaves nothing behind.
    let broken = raw_transcript_key(
        &Id::parse("workspace_id", "w1").unwrap(),
        &Id::parse("session_id", "broken").unwrap(),
    );
    let chunks = vec![
        Ok(Bytes::from(vec![1u8; 9_000_000])),
        Err(std::io::Error::other("client went away")),
    ];
    let err = store
        .put_stream(&broken, futures::stream::iter(chunks).boxed())
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Body { .. }), "{err}");
    assert_eq!(store.size(&broken).await.unwrap(), None);
    store.delete(&streamed).await.unwrap();

    // Keys that could escape are refused before any I/O.
    let err = store.get("transcripts/../../etc/passwd").await.unwrap_err();
    assert!(matches!(err, BlobError::InvalidKey { .. }), "{err}");
}

#[tokio::test]
async fn local_directory_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobs::new(dir.path());
    suite(&store).await;
    // Nothing is left beside the objects (no temporary files).
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_local_removal_takes_the_folders_it_leaves_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobs::new(dir.path());
    let keys = [
        "transcripts/w1/s1/raw.jsonl",
        "transcripts/w1/s1/parsed.json",
        "transcripts/w1/s2/raw.jsonl",
    ];
    for key in keys {
        store.put(key, Bytes::from_static(b"x\n")).await.unwrap();
    }
    store.delete(keys[0]).await.unwrap();
    assert!(
        dir.path().join("transcripts/w1/s1").is_dir(),
        "s1 still holds a file"
    );
    store.delete(keys[1]).await.unwrap();
    assert!(
        !dir.path().join("transcripts/w1/s1").exists(),
        "no folder named after a deleted session"
    );
    assert!(dir.path().join("transcripts/w1/s2").is_dir());
    store.delete(keys[2]).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(dir.path().is_dir(), "the store's own folder stays");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn set_default(name: &str, value: &str) {
    if std::env::var_os(name).is_none() {
        // SAFETY: called before any other thread of this test reads the environment.
        unsafe { std::env::set_var(name, value) };
    }
}

#[tokio::test]
async fn s3_passes_the_suite_against_s3s_fs() {
    set_default("AWS_ENDPOINT_URL", "http://127.0.0.1:9000");
    set_default("AWS_ACCESS_KEY_ID", "sessionflow");
    set_default("AWS_SECRET_ACCESS_KEY", "sessionflow-secret");
    set_default("AWS_REGION", "us-east-1");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let spec = format!("s3://suite-{}-{nanos}/some/prefix", std::process::id());
    let location = spec.strip_prefix("s3://").unwrap();
    let store = S3Blobs::from_env(location, &spec).await.unwrap();
    store
        .create_bucket_if_missing()
        .await
        .unwrap_or_else(|e| panic!("{e} (start s3s-fs with scripts/services.sh)"));
    assert_eq!(store.describe(), format!("{}", spec));
    suite(&store).await;

    // The same store opened through the SESSIONFLOW_BLOB syntax sees the same objects.
    let opened = blob::open(&spec).await.unwrap();
    store.put("a/b", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(opened.get("a/b").await.unwrap(), Bytes::from_static(b"x"));
}

#[tokio::test]
async fn specs_are_checked() {
    assert!(matches!(
        blob::open("").await,
        Err(BlobError::Config { .. })
    ));
    assert!(matches!(
        blob::open("s3://").await,
        Err(BlobError::Config { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let local = blob::open(dir.path().to_str().unwrap()).await.unwrap();
    assert!(local.describe().starts_with("directory "));
}
