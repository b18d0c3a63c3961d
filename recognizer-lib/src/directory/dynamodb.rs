//! [`DynamoDirectory`]: the people directory in one DynamoDB table (feature `aws`).
//!
//! Table `<prefix>-people` (on-demand billing), partition key `pk` (string), no sort key. Items:
//!
//! | `pk` | attributes |
//! |---|---|
//! | `person#<person_id>` | `person_id` S, `name` S, `details` M (S values), and when enrolled: `enrolled_at` S, `image_count` N, `dim` N, `embedding` B (little-endian f32), `samples` L of M {`image` S, `embedding` B}, `photos_digest` S (optional) |
//! | `setting#<key>` | `value` S |
//! | `member#["<class>","<person_id>"]` | `class` S, `member` S: one class membership (the roster of a class is every item of it) |
//! | `attendance#<session_id>` | `session_id` S, `class` S, `device` S, `started_at` S, `ended_at` S, `record` S (the whole session's attendance as JSON, corrections included) |
//! | `meta#gallery_version` | `version` N (atomic counter, +1 on every enrol, remove, records write and setting change), `dim` N (dimension of the last enrolment) |
//!
//! A person's samples live in their item, so an enrolment is one `PutItem` (atomic: no partial
//! enrolment is ever visible); DynamoDB's 400 KB item limit bounds the samples to about 150 per
//! person at 512-d (more are refused). [`enroll_many`](PeopleDirectory::enroll_many) writes 25
//! people per `BatchWriteItem` (each person still atomic). Lists (`people`, `samples`) scan the
//! table; the gallery scan reads only the template attributes, never the samples.
//!
//! **Gallery snapshot** ([`DynamoDirectory::with_gallery_snapshot`]): with a bucket configured,
//! [`publish_gallery`](PeopleDirectory::publish_gallery) writes every template as one S3 object,
//! `gallery/<table>.snapshot` ([`snapshot`](super::snapshot) format, tagged with the gallery
//! version), and [`gallery`](PeopleDirectory::gallery) reads it with one `GetObject` when its
//! version is current -- for 30,000 people one 61 MB read instead of a scan of every item. A
//! stale or missing snapshot falls back to the scan and is rewritten (best effort: a reader
//! without `s3:PutObject` on `gallery/*` only logs it). The object is outside `clips/`, so it
//! triggers no recognition.
//!
//! [`PeopleDirectory`] is synchronous while the SDK is async and the handler runs inside Tokio:
//! every call is spawned on the directory's own private runtime (one worker thread) and the
//! caller waits on a channel. No runtime's `block_on` is ever called, so the methods work from
//! plain threads, from `spawn_blocking` and even from inside an async task (where they block that
//! worker thread, as the SQLite backend does) without panicking or deadlocking.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::SystemTime;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use super::attendance::{check_attendance, validate_class, AttendanceBook, SessionAttendance};
use super::snapshot;
use super::{
    check_enrollment, check_enrollments, default_display_name, rfc3339_utc, validate_person_id,
    DirectoryError, EnrollmentSample, GalleryEntry, NewEnrollment, PeopleDirectory, PersonRecord,
};
use rollcall_protocol::aws::sdk_message;

const PK: &str = "pk";
const PERSON: &str = "person#";
const SETTING: &str = "setting#";
const VERSION_PK: &str = "meta#gallery_version";
/// Key prefix of class memberships (one item per class and person).
const MEMBER: &str = "member#";
/// Key prefix of session attendance (one item per session).
const ATTENDANCE: &str = "attendance#";
/// Most samples stored with one person (item size limit).
pub const MAX_SAMPLES: usize = 150;
/// Key prefix of gallery snapshots in the bucket (outside `clips/`: no recognition is triggered).
pub const GALLERY_SNAPSHOT_PREFIX: &str = "gallery/";
/// Items per `BatchWriteItem` (the API's limit).
const WRITE_BATCH: usize = 25;
/// Keys per `BatchGetItem` (the API's limit).
const GET_BATCH: usize = 100;

/// The S3 object key of `table`'s gallery snapshot.
pub fn snapshot_key(table: &str) -> String {
    format!("{GALLERY_SNAPSHOT_PREFIX}{table}.snapshot")
}

type Item = HashMap<String, AttributeValue>;

/// Create the people table (`pk` string hash key, on-demand) unless it exists, and wait until it
/// is active.
pub async fn create_table(client: &Client, table: &str) -> Result<(), DirectoryError> {
    let backend = |message: String| DirectoryError::Backend {
        backend: "dynamodb",
        location: table.to_string(),
        message,
    };
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| backend(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| backend(e.to_string()))?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(backend(sdk_message(&e))),
    }
    for _ in 0..600 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend(sdk_message(&e)))?;
        let status = out.table().and_then(|t| t.table_status()).cloned();
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(backend("table did not become ACTIVE within 60 s".into()))
}

/// The people directory in DynamoDB; see the [module docs](self).
pub struct DynamoDirectory {
    client: Client,
    table: String,
    snapshot: Option<SnapshotObject>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Where the gallery snapshot lives.
#[derive(Clone)]
struct SnapshotObject {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
}

impl std::fmt::Debug for DynamoDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDirectory")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Drop for DynamoDirectory {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code: let it go in the background.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl DynamoDirectory {
    /// A directory over `table` with a client for `config` (the table must exist: see
    /// [`create_table`] / `rollcall aws provision`).
    pub fn new(
        config: &rollcall_protocol::aws::SdkConfig,
        table: &str,
    ) -> Result<DynamoDirectory, DirectoryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dynamodb-directory")
            .enable_all()
            .build()
            .map_err(|e| DirectoryError::Backend {
                backend: "dynamodb",
                location: table.to_string(),
                message: format!("cannot start the directory's runtime: {e}"),
            })?;
        Ok(DynamoDirectory {
            client: Client::new(config),
            table: table.to_string(),
            snapshot: None,
            runtime: Some(runtime),
        })
    }

    /// Keep the gallery snapshot in `bucket` (see the [module docs](self)): `gallery` reads it
    /// when current, `publish_gallery` writes it.
    pub fn with_gallery_snapshot(
        mut self,
        config: &rollcall_protocol::aws::SdkConfig,
        bucket: &str,
    ) -> DynamoDirectory {
        self.snapshot = Some(SnapshotObject {
            s3: rollcall_protocol::aws::s3_client(config),
            bucket: bucket.to_string(),
            key: snapshot_key(&self.table),
        });
        self
    }

    /// `s3://bucket/key` of the gallery snapshot, when one is configured.
    pub fn snapshot_location(&self) -> Option<String> {
        self.snapshot
            .as_ref()
            .map(|s| format!("s3://{}/{}", s.bucket, s.key))
    }

    /// Load the SDK configuration (standard chain, `AWS_ENDPOINT_URL`) and open `table`.
    pub fn connect(table: &str) -> Result<DynamoDirectory, DirectoryError> {
        Self::connect_with(table, None)
    }

    /// [`connect`](Self::connect), keeping the gallery snapshot in `snapshot_bucket` when given.
    pub fn connect_with(
        table: &str,
        snapshot_bucket: Option<&str>,
    ) -> Result<DynamoDirectory, DirectoryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DirectoryError::Backend {
                backend: "dynamodb",
                location: table.to_string(),
                message: e.to_string(),
            })?;
        let config = std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(rollcall_protocol::aws::load_config()))
                .join()
                .expect("loading the AWS configuration panicked")
        });
        let directory = DynamoDirectory::new(&config, table)?;
        Ok(match snapshot_bucket {
            Some(bucket) => directory.with_gallery_snapshot(&config, bucket),
            None => directory,
        })
    }

    /// Create this directory's table unless it exists (see [`create_table`]).
    pub fn ensure_table(&self) -> Result<(), DirectoryError> {
        self.run(|client, table| async move {
            create_table(&client, &table)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// Delete the table and, when one is configured, the gallery snapshot (benchmarks and tests
    /// clean up with it).
    pub fn delete_table(&self) -> Result<(), DirectoryError> {
        if let Some(object) = self.snapshot.clone() {
            self.run(|_, _| async move {
                object
                    .s3
                    .delete_object()
                    .bucket(&object.bucket)
                    .key(&object.key)
                    .send()
                    .await
                    .map_err(|e| sdk_message(&e))?;
                Ok(())
            })?;
        }
        self.run(|client, table| async move {
            client
                .delete_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(())
        })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Run an SDK future on the private runtime and wait for its output.
    fn run<T, F>(&self, make: impl FnOnce(Client, String) -> F) -> Result<T, DirectoryError>
    where
        F: Future<Output = Result<T, String>> + Send + 'static,
        T: Send + 'static,
    {
        let future = make(self.client.clone(), self.table.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("runtime present until drop")
            .spawn(async move {
                let _ = tx.send(future.await);
            });
        rx.recv()
            .map_err(|_| "the directory's runtime stopped".to_string())
            .and_then(|r| r)
            .map_err(|message| self.backend(message))
    }

    fn backend(&self, message: String) -> DirectoryError {
        DirectoryError::Backend {
            backend: "dynamodb",
            location: self.table.clone(),
            message,
        }
    }

    fn corrupt(&self, reason: String) -> DirectoryError {
        DirectoryError::Corrupt {
            path: format!("dynamodb:{}", self.table).into(),
            reason,
        }
    }

    /// Every item of the table (paginated scan).
    fn scan(&self) -> Result<Vec<Item>, DirectoryError> {
        self.scan_attributes(&[])
    }

    /// Every item of the table with only `attributes` (all when empty): a gallery scan reads
    /// templates without the samples beside them.
    fn scan_attributes(&self, attributes: &[&str]) -> Result<Vec<Item>, DirectoryError> {
        self.scan_where(attributes, None)
    }

    /// Every item (with only `attributes`, all when empty) whose key starts with `prefix`
    /// (every item when `None`).
    fn scan_where(
        &self,
        attributes: &[&str],
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, DirectoryError> {
        let (projection, names): (Option<String>, Option<HashMap<String, String>>) =
            if attributes.is_empty() {
                (None, None)
            } else {
                // Placeholders: some attribute names (`name`...) are reserved words.
                let names: HashMap<String, String> = attributes
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("#a{i}"), a.to_string()))
                    .collect();
                let projection = (0..attributes.len())
                    .map(|i| format!("#a{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                (Some(projection), Some(names))
            };
        let (filter, mut names, values) = match prefix {
            Some(prefix) => (
                Some("begins_with(#pk, :prefix)".to_string()),
                Some(names.unwrap_or_default()),
                Some(HashMap::from([(
                    ":prefix".to_string(),
                    AttributeValue::S(prefix.to_string()),
                )])),
            ),
            None => (None, names, None),
        };
        if let Some(names) = names.as_mut().filter(|_| filter.is_some()) {
            names.insert("#pk".to_string(), PK.to_string());
        }
        self.run(|client, table| async move {
            let mut items = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let out = client
                    .scan()
                    .table_name(&table)
                    .consistent_read(true)
                    .set_projection_expression(projection.clone())
                    .set_filter_expression(filter.clone())
                    .set_expression_attribute_names(names.clone())
                    .set_expression_attribute_values(values.clone())
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_message(&e))?;
                items.extend(out.items.unwrap_or_default());
                match out.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => return Ok(items),
                }
            }
        })
    }

    /// The items of `pks` that exist (`BatchGetItem`, unprocessed keys retried).
    fn get_many(&self, pks: Vec<String>) -> Result<Vec<Item>, DirectoryError> {
        let mut found = Vec::new();
        for chunk in pks.chunks(GET_BATCH) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|pk| HashMap::from([(PK.to_string(), AttributeValue::S(pk.clone()))]))
                .collect();
            found.extend(self.run(|client, table| async move {
                let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut request = Some(HashMap::from([(table.clone(), keys)]));
                let mut items = Vec::new();
                let mut delay = std::time::Duration::from_millis(50);
                while let Some(wanted) = request.take().filter(|r| !r.is_empty()) {
                    let out = client
                        .batch_get_item()
                        .set_request_items(Some(wanted))
                        .send()
                        .await
                        .map_err(|e| sdk_message(&e))?;
                    if let Some(mut responses) = out.responses {
                        items.extend(responses.remove(&table).unwrap_or_default());
                    }
                    request = out.unprocessed_keys;
                    if request.as_ref().is_some_and(|r| !r.is_empty()) {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(2));
                    }
                }
                Ok(items)
            })?);
        }
        Ok(found)
    }

    /// Write `items` with `BatchWriteItem`, 25 at a time, retrying unprocessed ones.
    fn put_many(&self, items: Vec<Item>) -> Result<(), DirectoryError> {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let batch: Vec<aws_sdk_dynamodb::types::WriteRequest> = items
                .by_ref()
                .take(WRITE_BATCH)
                .map(|item| {
                    aws_sdk_dynamodb::types::PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| {
                            aws_sdk_dynamodb::types::WriteRequest::builder()
                                .put_request(put)
                                .build()
                        })
                        .map_err(|e| self.backend(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            self.run(|client, table| async move {
                let mut request = Some(HashMap::from([(table.clone(), batch)]));
                let mut delay = std::time::Duration::from_millis(50);
                while let Some(pending) = request.take().filter(|r| !r.is_empty()) {
                    let out = client
                        .batch_write_item()
                        .set_request_items(Some(pending))
                        .send()
                        .await
                        .map_err(|e| sdk_message(&e))?;
                    request = out.unprocessed_items;
                    if request.as_ref().is_some_and(|r| !r.is_empty()) {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(2));
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn get(&self, pk: String) -> Result<Option<Item>, DirectoryError> {
        self.run(|client, table| async move {
            let out = client
                .get_item()
                .table_name(table)
                .key(PK, AttributeValue::S(pk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(out.item)
        })
    }

    /// +1 on the gallery version; with `dimension`, also record the templates' dimension there
    /// (what the next enrolment checks against without a scan).
    fn bump_version(&self, dimension: Option<usize>) -> Result<(), DirectoryError> {
        self.run(move |client, table| async move {
            let mut update = client
                .update_item()
                .table_name(table)
                .key(PK, AttributeValue::S(VERSION_PK.into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()));
            update = match dimension {
                Some(d) => update
                    .update_expression("ADD version :one SET dim = :dim")
                    .expression_attribute_values(":dim", AttributeValue::N(d.to_string())),
                None => update.update_expression("ADD version :one"),
            };
            update.send().await.map_err(|e| sdk_message(&e))?;
            Ok(())
        })
    }

    /// Refuse enrolments of `dimension` when other people's templates differ. Fast path: the
    /// dimension recorded with the gallery version; otherwise (none recorded, or it differs and
    /// everybody of that size may have been removed since) the `dim` of every person, scanned.
    fn check_dimension(&self, incoming: &[&str], dimension: usize) -> Result<(), DirectoryError> {
        let recorded = self
            .get(VERSION_PK.to_string())?
            .and_then(|item| item.get("dim").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse::<usize>().ok());
        if recorded == Some(dimension) {
            return Ok(());
        }
        for item in self.scan_attributes(&[PK, "person_id", "dim"])? {
            let Some(other) = item.get("person_id").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if incoming.contains(&other.as_str()) {
                continue;
            }
            let other_dim = item
                .get("dim")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(expected) = other_dim.filter(|d| *d != dimension) {
                return Err(DirectoryError::DimensionMismatch {
                    person_id: incoming.first().map_or_else(String::new, |p| p.to_string()),
                    expected,
                    actual: dimension,
                });
            }
        }
        Ok(())
    }

    /// The person item of one enrolment: `existing` (name, details) kept, the rest replaced.
    fn enrollment_item(existing: Option<Item>, e: &NewEnrollment, now: &str) -> Item {
        let person_id = e.person_id.as_str();
        let mut item: Item = existing.unwrap_or_default();
        item.insert(PK.into(), AttributeValue::S(format!("{PERSON}{person_id}")));
        item.insert("person_id".into(), AttributeValue::S(person_id.into()));
        item.entry("name".into())
            .or_insert_with(|| AttributeValue::S(default_display_name(person_id)));
        item.insert("enrolled_at".into(), AttributeValue::S(now.to_string()));
        item.insert(
            "image_count".into(),
            AttributeValue::N(e.samples.len().to_string()),
        );
        item.insert("dim".into(), AttributeValue::N(e.mean.len().to_string()));
        item.insert(
            "embedding".into(),
            AttributeValue::B(Blob::new(le_bytes(&e.mean))),
        );
        item.insert(
            "samples".into(),
            AttributeValue::L(
                e.samples
                    .iter()
                    .map(|s| {
                        AttributeValue::M(HashMap::from([
                            ("image".to_string(), AttributeValue::S(s.image.clone())),
                            (
                                "embedding".to_string(),
                                AttributeValue::B(Blob::new(le_bytes(&s.embedding))),
                            ),
                        ]))
                    })
                    .collect(),
            ),
        );
        match &e.photos_digest {
            Some(digest) => {
                item.insert("photos_digest".into(), AttributeValue::S(digest.clone()));
            }
            None => {
                item.remove("photos_digest");
            }
        }
        item
    }

    /// The templates by scanning the table (template attributes only), with the gallery version
    /// read first.
    fn scan_gallery(&self) -> Result<(u64, Vec<GalleryEntry>), DirectoryError> {
        let version = self.gallery_version()?;
        let mut items = self.scan_attributes(&[PK, "person_id", "image_count", "embedding"])?;
        items.retain(|i| {
            i.get(PK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with(PERSON))
                && i.contains_key("embedding")
        });
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let person_id = item
                .get("person_id")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| self.corrupt("person item without person_id".into()))?;
            let embedding = self.floats(&person_id, item.get("embedding"))?;
            if let Some(first) = out.first().map(|e: &GalleryEntry| e.embedding.len()) {
                if first != embedding.len() {
                    return Err(self.corrupt(format!(
                        "mean embedding of {person_id:?} has {} values, the others {first}",
                        embedding.len()
                    )));
                }
            }
            out.push(GalleryEntry {
                image_count: item
                    .get("image_count")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                person_id,
                embedding,
            });
        }
        out.sort_by(|a, b| a.person_id.cmp(&b.person_id));
        Ok((version, out))
    }

    /// The snapshot's templates if it exists and belongs to `version`.
    fn read_snapshot(
        &self,
        object: &SnapshotObject,
        version: u64,
    ) -> Result<Option<Vec<GalleryEntry>>, DirectoryError> {
        let object = object.clone();
        let bytes = self.run(|_, _| async move {
            match object
                .s3
                .get_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .send()
                .await
            {
                Ok(out) => out
                    .body
                    .collect()
                    .await
                    .map(|b| Some(b.into_bytes()))
                    .map_err(|e| format!("reading s3://{}/{}: {e}", object.bucket, object.key)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(format!(
                    "s3://{}/{}: {}",
                    object.bucket,
                    object.key,
                    sdk_message(&e)
                )),
            }
        })?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let decoded = snapshot::decode(&bytes)
            .map_err(|reason| self.corrupt(format!("gallery snapshot: {reason}")))?;
        Ok((decoded.gallery_version == version).then_some(decoded.entries))
    }

    /// Write the snapshot of `entries` at `version`.
    fn write_snapshot(
        &self,
        object: &SnapshotObject,
        version: u64,
        entries: &[GalleryEntry],
    ) -> Result<(), DirectoryError> {
        let body = snapshot::encode(version, entries).map_err(|reason| self.corrupt(reason))?;
        let object = object.clone();
        self.run(|_, _| async move {
            object
                .s3
                .put_object()
                .bucket(&object.bucket)
                .key(&object.key)
                .content_type("application/octet-stream")
                .body(body.into())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "writing s3://{}/{}: {}",
                        object.bucket,
                        object.key,
                        sdk_message(&e)
                    )
                })?;
            Ok(())
        })
    }

    fn record_of(&self, item: &Item) -> Result<PersonRecord, DirectoryError> {
        let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let person_id =
            s("person_id").ok_or_else(|| self.corrupt("person item without person_id".into()))?;
        let details = match item.get("details") {
            Some(AttributeValue::M(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect(),
            _ => Default::default(),
        };
        Ok(PersonRecord {
            name: s("name").unwrap_or_else(|| default_display_name(&person_id)),
            person_id,
            details,
            enrolled_at: s("enrolled_at"),
            image_count: item
                .get("image_count")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
    }

    fn floats(
        &self,
        who: &str,
        value: Option<&AttributeValue>,
    ) -> Result<Vec<f32>, DirectoryError> {
        let bytes = match value {
            Some(AttributeValue::B(b)) => b.as_ref(),
            _ => return Err(self.corrupt(format!("{who}: embedding is not binary"))),
        };
        if bytes.len() % 4 != 0 {
            return Err(self.corrupt(format!(
                "{who}: embedding is {} bytes, not a whole number of 4-byte floats",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The enrolment samples stored in one person item (none when not enrolled).
    fn samples_of(&self, item: &Item) -> Result<Vec<EnrollmentSample>, DirectoryError> {
        let Some(AttributeValue::L(samples)) = item.get("samples") else {
            return Ok(Vec::new());
        };
        let record = self.record_of(item)?;
        samples
            .iter()
            .map(|sample| {
                let AttributeValue::M(m) = sample else {
                    return Err(self.corrupt(format!("{}: sample is not a map", record.person_id)));
                };
                Ok(EnrollmentSample {
                    person_id: record.person_id.clone(),
                    image: m
                        .get("image")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    embedding: self.floats(&record.person_id, m.get("embedding"))?,
                })
            })
            .collect()
    }

    fn person_items(&self) -> Result<Vec<Item>, DirectoryError> {
        let mut items: Vec<Item> = self
            .scan()?
            .into_iter()
            .filter(|i| {
                i.get(PK)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with(PERSON))
            })
            .collect();
        items.sort_by(|a, b| {
            let id = |i: &Item| i.get("person_id").and_then(|v| v.as_s().ok()).cloned();
            id(a).cmp(&id(b))
        });
        Ok(items)
    }
}

impl PeopleDirectory for DynamoDirectory {
    fn upsert_records(&self, records: &[PersonRecord]) -> Result<usize, DirectoryError> {
        for record in records {
            validate_person_id(&record.person_id)?;
        }
        for record in records {
            let name = if record.name.trim().is_empty() {
                default_display_name(&record.person_id)
            } else {
                record.name.clone()
            };
            let details: Item = record
                .details
                .iter()
                .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                .collect();
            let id = record.person_id.clone();
            self.run(|client, table| async move {
                client
                    .update_item()
                    .table_name(table)
                    .key(PK, AttributeValue::S(format!("{PERSON}{id}")))
                    .update_expression("SET person_id = :id, #n = :n, details = :d")
                    .expression_attribute_names("#n", "name")
                    .expression_attribute_values(":id", AttributeValue::S(id))
                    .expression_attribute_values(":n", AttributeValue::S(name))
                    .expression_attribute_values(":d", AttributeValue::M(details))
                    .send()
                    .await
                    .map_err(|e| sdk_message(&e))?;
                Ok(())
            })?;
        }
        // Running functions cache records until the version changes.
        if !records.is_empty() {
            self.bump_version(None)?;
        }
        Ok(records.len())
    }

    fn enroll(
        &self,
        person_id: &str,
        mean: &[f32],
        samples: &[EnrollmentSample],
    ) -> Result<(), DirectoryError> {
        check_enrollment(person_id, mean, samples)?;
        self.enroll_many(&[NewEnrollment {
            person_id: person_id.to_owned(),
            mean: mean.to_vec(),
            samples: samples.to_vec(),
            photos_digest: None,
        }])
    }

    fn enroll_many(&self, enrollments: &[NewEnrollment]) -> Result<(), DirectoryError> {
        let Some(dimension) = check_enrollments(enrollments)? else {
            return Ok(());
        };
        // One DynamoDB item holds the person and their samples (item size limit).
        if let Some(e) = enrollments.iter().find(|e| e.samples.len() > MAX_SAMPLES) {
            return Err(DirectoryError::InvalidEnrollment {
                person_id: e.person_id.clone(),
                reason: format!(
                    "{} samples: the DynamoDB directory keeps at most {MAX_SAMPLES} per person",
                    e.samples.len()
                ),
            });
        }
        let ids: Vec<&str> = enrollments.iter().map(|e| e.person_id.as_str()).collect();
        self.check_dimension(&ids, dimension)?;
        // Names and details already stored are kept.
        let mut existing: HashMap<String, Item> = self
            .get_many(ids.iter().map(|id| format!("{PERSON}{id}")).collect())?
            .into_iter()
            .filter_map(|item| {
                let id = item.get("person_id").and_then(|v| v.as_s().ok()).cloned()?;
                Some((id, item))
            })
            .collect();
        let now = rfc3339_utc(SystemTime::now());
        let items: Vec<Item> = enrollments
            .iter()
            .map(|e| Self::enrollment_item(existing.remove(&e.person_id), e, &now))
            .collect();
        self.put_many(items)?;
        self.bump_version(Some(dimension))
    }

    fn photos_digests(&self) -> Result<BTreeMap<String, String>, DirectoryError> {
        Ok(self
            .scan_attributes(&[PK, "person_id", "photos_digest", "enrolled_at"])?
            .into_iter()
            .filter(|i| i.contains_key("enrolled_at"))
            .filter_map(|i| {
                let id = i.get("person_id").and_then(|v| v.as_s().ok()).cloned()?;
                let digest = i
                    .get("photos_digest")
                    .and_then(|v| v.as_s().ok())
                    .cloned()?;
                Some((id, digest))
            })
            .collect())
    }

    fn publish_gallery(&self) -> Result<(), DirectoryError> {
        let Some(object) = &self.snapshot else {
            return Ok(());
        };
        let (version, entries) = self.scan_gallery()?;
        self.write_snapshot(object, version, &entries)?;
        tracing::info!(
            people = entries.len(),
            version,
            snapshot = %format!("s3://{}/{}", object.bucket, object.key),
            "gallery snapshot written"
        );
        Ok(())
    }

    fn person(&self, person_id: &str) -> Result<Option<PersonRecord>, DirectoryError> {
        validate_person_id(person_id)?;
        match self.get(format!("{PERSON}{person_id}"))? {
            Some(item) => Ok(Some(self.record_of(&item)?)),
            None => Ok(None),
        }
    }

    fn people(&self) -> Result<Vec<PersonRecord>, DirectoryError> {
        self.person_items()?
            .iter()
            .map(|i| self.record_of(i))
            .collect()
    }

    fn remove(&self, person_id: &str) -> Result<bool, DirectoryError> {
        validate_person_id(person_id)?;
        let existed = self.delete_key(format!("{PERSON}{person_id}"))?;
        if existed {
            self.bump_version(None)?;
        }
        Ok(existed)
    }

    fn gallery(&self) -> Result<Vec<GalleryEntry>, DirectoryError> {
        let Some(object) = &self.snapshot else {
            return Ok(self.scan_gallery()?.1);
        };
        let version = self.gallery_version()?;
        match self.read_snapshot(object, version) {
            Ok(Some(entries)) => return Ok(entries),
            Ok(None) => tracing::info!(
                snapshot = %format!("s3://{}/{}", object.bucket, object.key),
                "gallery snapshot missing or stale: scanning the table"
            ),
            Err(e) => tracing::warn!(error = %e, "gallery snapshot unusable: scanning the table"),
        }
        let (version, entries) = self.scan_gallery()?;
        // So the next load is one read again; a reader that may not write only loses speed.
        if let Err(e) = self.write_snapshot(object, version, &entries) {
            tracing::warn!(error = %e, "gallery snapshot not rewritten");
        }
        Ok(entries)
    }

    fn gallery_entry(&self, person_id: &str) -> Result<Option<GalleryEntry>, DirectoryError> {
        validate_person_id(person_id)?;
        let Some(item) = self.get(format!("{PERSON}{person_id}"))? else {
            return Ok(None);
        };
        if !item.contains_key("embedding") {
            return Ok(None);
        }
        let record = self.record_of(&item)?;
        Ok(Some(GalleryEntry {
            embedding: self.floats(&record.person_id, item.get("embedding"))?,
            person_id: record.person_id,
            image_count: record.image_count,
        }))
    }

    fn person_samples(&self, person_id: &str) -> Result<Vec<EnrollmentSample>, DirectoryError> {
        validate_person_id(person_id)?;
        match self.get(format!("{PERSON}{person_id}"))? {
            Some(item) => self.samples_of(&item),
            None => Ok(Vec::new()),
        }
    }

    fn samples(&self) -> Result<Vec<EnrollmentSample>, DirectoryError> {
        let mut out = Vec::new();
        for item in self.person_items()? {
            out.extend(self.samples_of(&item)?);
        }
        Ok(out)
    }

    fn setting(&self, key: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self
            .get(format!("{SETTING}{key}"))?
            .and_then(|item| item.get("value").and_then(|v| v.as_s().ok()).cloned()))
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), DirectoryError> {
        // Running functions cache settings (the match threshold) until the version changes:
        // bump it when the value changes.
        if self.setting(key)?.as_deref() == Some(value) {
            return Ok(());
        }
        let (pk, value) = (format!("{SETTING}{key}"), value.to_string());
        self.run(|client, table| async move {
            client
                .put_item()
                .table_name(table)
                .item(PK, AttributeValue::S(pk))
                .item("value", AttributeValue::S(value))
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(())
        })?;
        self.bump_version(None)
    }

    fn gallery_version(&self) -> Result<u64, DirectoryError> {
        Ok(self
            .get(VERSION_PK.to_string())?
            .and_then(|item| item.get("version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

impl DynamoDirectory {
    /// The items whose key starts with `prefix` (a scan: classes and attendance are small
    /// beside the people).
    fn items_with_prefix(&self, prefix: &str) -> Result<Vec<Item>, DirectoryError> {
        self.scan_where(&[], Some(prefix))
    }

    /// Delete the item `pk`; whether it existed.
    fn delete_key(&self, pk: String) -> Result<bool, DirectoryError> {
        self.run(|client, table| async move {
            let out = client
                .delete_item()
                .table_name(table)
                .key(PK, AttributeValue::S(pk))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(out.attributes.is_some_and(|a| !a.is_empty()))
        })
    }

    fn attendance_of(&self, item: &Item) -> Result<SessionAttendance, DirectoryError> {
        let record = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| self.corrupt("attendance item without record".into()))?;
        serde_json::from_str(record)
            .map_err(|e| self.corrupt(format!("an attendance record is unreadable: {e}")))
    }
}

/// The key of one class membership: the pair JSON-encoded, so no class or id can collide.
fn member_key(class: &str, person_id: &str) -> String {
    format!("{MEMBER}{}", serde_json::json!([class, person_id]))
}

impl AttendanceBook for DynamoDirectory {
    fn add_to_class(&self, class: &str, person_ids: &[String]) -> Result<usize, DirectoryError> {
        validate_class(class)?;
        for id in person_ids {
            validate_person_id(id)?;
        }
        let on_roster = self.roster(class)?;
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in person_ids {
            if on_roster.contains(id) || !seen.insert(id.as_str()) {
                continue;
            }
            items.push(HashMap::from([
                (PK.to_string(), AttributeValue::S(member_key(class, id))),
                ("class".to_string(), AttributeValue::S(class.to_string())),
                ("member".to_string(), AttributeValue::S(id.clone())),
            ]));
        }
        let added = items.len();
        self.put_many(items)?;
        Ok(added)
    }

    fn remove_from_class(
        &self,
        class: &str,
        person_ids: &[String],
    ) -> Result<usize, DirectoryError> {
        validate_class(class)?;
        let ids: Vec<String> = if person_ids.is_empty() {
            self.roster(class)?
        } else {
            person_ids.to_vec()
        };
        let mut removed = 0;
        for id in ids {
            if self.delete_key(member_key(class, &id))? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn classes(&self) -> Result<BTreeMap<String, Vec<String>>, DirectoryError> {
        let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in self.items_with_prefix(MEMBER)? {
            let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (Some(class), Some(member)) = (s("class"), s("member")) else {
                return Err(self.corrupt("class membership item without class or member".into()));
            };
            classes.entry(class).or_default().push(member);
        }
        for members in classes.values_mut() {
            members.sort();
        }
        Ok(classes)
    }

    fn roster(&self, class: &str) -> Result<Vec<String>, DirectoryError> {
        validate_class(class)?;
        Ok(self.classes()?.remove(class).unwrap_or_default())
    }

    fn store_attendance(&self, attendance: &SessionAttendance) -> Result<(), DirectoryError> {
        check_attendance(attendance)?;
        let record = serde_json::to_string(attendance)
            .map_err(|e| self.corrupt(format!("attendance cannot be written: {e}")))?;
        let item: Item = HashMap::from([
            (
                PK.to_string(),
                AttributeValue::S(format!("{ATTENDANCE}{}", attendance.session_id)),
            ),
            (
                "session_id".to_string(),
                AttributeValue::S(attendance.session_id.clone()),
            ),
            (
                "class".to_string(),
                AttributeValue::S(attendance.class.clone()),
            ),
            (
                "device".to_string(),
                AttributeValue::S(attendance.device.clone()),
            ),
            (
                "started_at".to_string(),
                AttributeValue::S(attendance.started_at.clone()),
            ),
            (
                "ended_at".to_string(),
                AttributeValue::S(attendance.ended_at.clone()),
            ),
            ("record".to_string(), AttributeValue::S(record)),
        ]);
        self.run(|client, table| async move {
            client
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(())
        })
    }

    fn attendance(&self, session_id: &str) -> Result<Option<SessionAttendance>, DirectoryError> {
        self.get(format!("{ATTENDANCE}{session_id}"))?
            .map(|item| self.attendance_of(&item))
            .transpose()
    }

    fn attendance_history(&self) -> Result<Vec<SessionAttendance>, DirectoryError> {
        let mut out = self
            .items_with_prefix(ATTENDANCE)?
            .iter()
            .map(|item| self.attendance_of(item))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.started_at, &a.session_id).cmp(&(&b.started_at, &b.session_id)));
        Ok(out)
    }

    fn prune_attendance(&self, before: &str) -> Result<usize, DirectoryError> {
        let mut removed = 0;
        for session in self.attendance_history()? {
            if session.ended_at.as_str() < before
                && self.delete_key(format!("{ATTENDANCE}{}", session.session_id))?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
