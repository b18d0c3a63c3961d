//! [`DynamoDirectory`]: the people directory in one DynamoDB table (feature `aws`).
//!
//! Table `<prefix>-people` (on-demand billing), partition key `pk` (string), no sort key. Items:
//!
//! | `pk` | attributes |
//! |---|---|
//! | `person#<person_id>` | `person_id` S, `name` S, `details` M (S values), and when enrolled: `enrolled_at` S, `image_count` N, `dim` N, `embedding` B (little-endian f32), `samples` L of M {`image` S, `embedding` B} |
//! | `setting#<key>` | `value` S |
//! | `meta#gallery_version` | `version` N (atomic counter, +1 on every enrol, remove, records write and setting change) |
//!
//! A person's samples live in their item, so an enrolment is one `PutItem` (atomic: no partial
//! enrolment is ever visible); DynamoDB's 400 KB item limit bounds the samples to about 150 per
//! person at 512-d (more are refused). Lists (`people`, `gallery`, `samples`) scan the table.
//!
//! [`PeopleDirectory`] is synchronous while the SDK is async and the handler runs inside Tokio:
//! every call is spawned on the directory's own private runtime (one worker thread) and the
//! caller waits on a channel. No runtime's `block_on` is ever called, so the methods work from
//! plain threads, from `spawn_blocking` and even from inside an async task (where they block that
//! worker thread, as the SQLite backend does) without panicking or deadlocking.

use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use super::{
    check_enrollment, default_display_name, rfc3339_utc, validate_person_id, DirectoryError,
    EnrollmentSample, GalleryEntry, PeopleDirectory, PersonRecord,
};
use rollcall_protocol::aws::sdk_message;

const PK: &str = "pk";
const PERSON: &str = "person#";
const SETTING: &str = "setting#";
const VERSION_PK: &str = "meta#gallery_version";
/// Most samples stored with one person (item size limit).
pub const MAX_SAMPLES: usize = 150;

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
    runtime: Option<tokio::runtime::Runtime>,
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
            runtime: Some(runtime),
        })
    }

    /// Load the SDK configuration (standard chain, `AWS_ENDPOINT_URL`) and open `table`.
    pub fn connect(table: &str) -> Result<DynamoDirectory, DirectoryError> {
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
        DynamoDirectory::new(&config, table)
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
        self.run(|client, table| async move {
            let mut items = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let out = client
                    .scan()
                    .table_name(&table)
                    .consistent_read(true)
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

    fn bump_version(&self) -> Result<(), DirectoryError> {
        self.run(|client, table| async move {
            client
                .update_item()
                .table_name(table)
                .key(PK, AttributeValue::S(VERSION_PK.into()))
                .update_expression("ADD version :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
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
            self.bump_version()?;
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
        let invalid = |reason: String| DirectoryError::InvalidEnrollment {
            person_id: person_id.to_owned(),
            reason,
        };
        // One DynamoDB item holds the person and their samples (item size limit).
        if samples.len() > MAX_SAMPLES {
            return Err(invalid(format!(
                "{} samples: the DynamoDB directory keeps at most {MAX_SAMPLES} per person",
                samples.len()
            )));
        }
        // Dimension of the other people's embeddings.
        for item in self.person_items()? {
            let other = item.get("person_id").and_then(|v| v.as_s().ok());
            if other.map(String::as_str) == Some(person_id) {
                continue;
            }
            if let Some(AttributeValue::B(b)) = item.get("embedding") {
                let expected = b.as_ref().len() / 4;
                if expected != mean.len() {
                    return Err(DirectoryError::DimensionMismatch {
                        person_id: person_id.to_owned(),
                        expected,
                        actual: mean.len(),
                    });
                }
                break;
            }
        }
        let existing = self.get(format!("{PERSON}{person_id}"))?;
        let mut item: Item = existing.unwrap_or_default();
        item.insert(PK.into(), AttributeValue::S(format!("{PERSON}{person_id}")));
        item.insert("person_id".into(), AttributeValue::S(person_id.into()));
        item.entry("name".into())
            .or_insert_with(|| AttributeValue::S(default_display_name(person_id)));
        item.insert(
            "enrolled_at".into(),
            AttributeValue::S(rfc3339_utc(SystemTime::now())),
        );
        item.insert(
            "image_count".into(),
            AttributeValue::N(samples.len().to_string()),
        );
        item.insert("dim".into(), AttributeValue::N(mean.len().to_string()));
        item.insert(
            "embedding".into(),
            AttributeValue::B(Blob::new(le_bytes(mean))),
        );
        item.insert(
            "samples".into(),
            AttributeValue::L(
                samples
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
        self.run(|client, table| async move {
            client
                .put_item()
                .table_name(table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(())
        })?;
        self.bump_version()
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
        let pk = format!("{PERSON}{person_id}");
        let existed = self.run(|client, table| async move {
            let out = client
                .delete_item()
                .table_name(table)
                .key(PK, AttributeValue::S(pk))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| sdk_message(&e))?;
            Ok(out.attributes.is_some_and(|a| !a.is_empty()))
        })?;
        if existed {
            self.bump_version()?;
        }
        Ok(existed)
    }

    fn gallery(&self) -> Result<Vec<GalleryEntry>, DirectoryError> {
        let mut out = Vec::new();
        for item in self.person_items()? {
            if !item.contains_key("embedding") {
                continue;
            }
            let record = self.record_of(&item)?;
            let embedding = self.floats(&record.person_id, item.get("embedding"))?;
            out.push(GalleryEntry {
                person_id: record.person_id,
                embedding,
                image_count: record.image_count,
            });
        }
        Ok(out)
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
        self.bump_version()
    }

    fn gallery_version(&self) -> Result<u64, DirectoryError> {
        Ok(self
            .get(VERSION_PK.to_string())?
            .and_then(|item| item.get("version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}
