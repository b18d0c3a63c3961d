//! The recognition function over the AWS backends (feature `aws`): S3 clips, the DynamoDB people
//! directory, SQS result queues. [`aws_handler`] is the one constructor the Lambda and
//! `rollcall worker` share, so both deployments are configured the same way.

use std::sync::Arc;

use rollcall_protocol::aws::{Names, SdkConfig, SqsClient};
use rollcall_protocol::results::sqs::SqsResultQueue;
use rollcall_protocol::store::s3::S3ClipStore;

use crate::clip::{ClipAnalyzer, SamplePolicy};
use crate::directory::dynamodb::DynamoDirectory;
use crate::directory::DirectoryError;
use crate::handler::{HandlerConfig, RecognitionHandler};
use crate::vision::FacePipeline;

/// The handler with the AWS backends.
pub type AwsHandler = RecognitionHandler<S3ClipStore, DynamoDirectory, SqsResultQueue>;

/// Where an AWS function reads and writes, and how it recognises.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsHandlerConfig {
    /// Resource names: the clips bucket and the prefix of the result queues
    /// (`<prefix>-results-<device>`).
    pub names: Names,
    /// The people table (normally [`Names::table`]).
    pub table: String,
    /// Frames analysed per clip.
    pub sample: SamplePolicy,
    /// Byte limit, threshold, instance id... (the byte limit also bounds the clip analysis).
    pub handler: HandlerConfig,
}

impl AwsHandlerConfig {
    /// The defaults for `names`: table [`Names::table`], automatic sampling, default handler
    /// settings.
    pub fn new(names: Names) -> AwsHandlerConfig {
        AwsHandlerConfig {
            table: names.table(),
            names,
            sample: SamplePolicy::default(),
            handler: HandlerConfig::default(),
        }
    }
}

/// The handler over S3 (`config.names.bucket`), DynamoDB (`config.table`) and SQS result queues,
/// analysing clips with `pipeline`. Loads nothing yet: call
/// [`warm_up`](RecognitionHandler::warm_up) to load the gallery before the first clip.
pub fn aws_handler(
    sdk: &SdkConfig,
    pipeline: Arc<FacePipeline>,
    config: &AwsHandlerConfig,
) -> Result<AwsHandler, DirectoryError> {
    // The gallery comes from the snapshot enrolment writes next to the clips: one read at a
    // cold start instead of a scan of every person.
    let directory = Arc::new(
        DynamoDirectory::new(sdk, &config.table)?.with_gallery_snapshot(sdk, &config.names.bucket),
    );
    Ok(RecognitionHandler::new(
        S3ClipStore::from_config(sdk, &config.names.bucket),
        directory,
        SqsResultQueue::new(SqsClient::new(sdk), &config.names.prefix),
        ClipAnalyzer::new(pipeline).with_policy(config.sample),
        config.handler.clone(),
    ))
}
