//! [`CedarEvaluator`]: policies written in Cedar (feature `cedar`).
//!
//! A compliance check becomes one Cedar authorization request:
//! - the action type `t` becomes the action `Action::"t"` (the entity type is configurable, for
//!   namespaced schemas: `NFCS::Action::"t"`);
//! - the [`PolicyContext`] becomes the request's context record (integers, strings, booleans,
//!   lists as sets, records; Cedar has no floats and no null, so those are refused with
//!   [`EvaluationError::UnsupportedValue`]);
//! - the principal and the resource are fixed entities, `Agent::"nfcs"` and `System::"nfcs"`
//!   unless configured, since a constitutional check is about the action and its context.
//!
//! With a schema, the context is validated against the action's context type (a context that
//! does not fit is [`EvaluationError::ContextSchema`]), the policies are validated against the
//! schema when they load, and an action the schema does not declare is
//! [`EvaluationError::UnknownAction`]. Without a schema, the known actions are those the
//! policies name in their scopes (`action == Action::"t"`, `action in [...]`), plus any given
//! to [`CedarEvaluatorBuilder::known_actions`].
//!
//! Policy ids: a policy's `@id("...")` annotation when it has one, otherwise
//! `{source name}:policy{N}` with N counting the policies of that source from 0.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RequestValidationError, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;

use crate::context::{ContextValue, PolicyContext};
use crate::evaluator::{EvaluationError, PolicyDecision, PolicyEvaluator, Verdict};

/// Why a Cedar policy set or schema could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CedarLoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// A policy does not parse.
    #[error("syntax error in {source_name} at line {line}, column {column}: {message}")]
    Syntax {
        /// The file name (or the name given with the text).
        source_name: String,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column (in characters) of the error.
        column: usize,
        /// Cedar's message, with its help when it has one.
        message: String,
    },
    /// The schema does not parse or is inconsistent.
    #[error("invalid schema {source_name}{}: {message}", position(*.line, *.column))]
    Schema {
        /// The file name (or the name given with the text).
        source_name: String,
        /// The 1-based line of the error, when Cedar locates it.
        line: Option<usize>,
        /// The 1-based column of the error, when Cedar locates it.
        column: Option<usize>,
        /// Cedar's message.
        message: String,
    },
    /// A policy does not type-check against the schema.
    #[error("policy {policy_id} does not validate against the schema: {message}")]
    Validation {
        /// The policy's id.
        policy_id: String,
        /// Cedar's message.
        message: String,
    },
    /// Two policies have the same id.
    #[error("duplicate policy id {policy_id:?} (in {source_name})")]
    DuplicatePolicyId {
        /// The id.
        policy_id: String,
        /// Where the second one is.
        source_name: String,
    },
    /// The principal, resource or action entity type is not a valid Cedar name.
    #[error("invalid {what} {text:?}: {message}")]
    InvalidEntity {
        /// "principal", "resource" or "action entity type".
        what: &'static str,
        /// The text that was given.
        text: String,
        /// Cedar's message.
        message: String,
    },
    /// No policies were given, or a directory holds no `.cedar` file.
    #[error("no Cedar policies found{}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    NoPolicies {
        /// The directory searched, if any.
        path: Option<PathBuf>,
    },
    /// A directory holds more than one schema file.
    #[error("more than one schema file: {first} and {second}")]
    SeveralSchemas {
        /// The first schema file.
        first: PathBuf,
        /// The second schema file.
        second: PathBuf,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        _ => String::new(),
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |rest| rest.chars().count())
        + 1;
    (line, column)
}

/// The first labelled offset of a diagnostic, as line and column in `text`.
fn locate(diagnostic: &dyn Diagnostic, text: &str) -> Option<(usize, usize)> {
    let span = diagnostic.labels()?.next()?;
    Some(line_and_column(text, span.offset()))
}

/// A diagnostic's message with its help, if any.
fn describe(diagnostic: &dyn Diagnostic) -> String {
    match diagnostic.help() {
        Some(help) => format!("{diagnostic} ({help})"),
        None => diagnostic.to_string(),
    }
}

/// Builds a [`CedarEvaluator`] from policy texts and files, and optionally a schema.
///
/// ```
/// use nfcs_policy_cache::cedar::CedarEvaluator;
///
/// let error = CedarEvaluator::builder()
///     .policies("constitution", "permit(principal, action, resource)\nwhen { context.risk <  };")
///     .build()
///     .unwrap_err();
/// assert!(error.to_string().contains("line 2"), "{error}");
/// ```
#[derive(Debug, Clone)]
pub struct CedarEvaluatorBuilder {
    policy_sources: Vec<Source>,
    schema: Option<Source>,
    principal: String,
    resource: String,
    action_type: String,
    known_actions: Vec<String>,
}

#[derive(Debug, Clone)]
enum Source {
    Text { name: String, text: String },
    File(PathBuf),
    Directory(PathBuf),
}

impl Default for CedarEvaluatorBuilder {
    fn default() -> CedarEvaluatorBuilder {
        CedarEvaluatorBuilder {
            policy_sources: Vec::new(),
            schema: None,
            principal: r#"Agent::"nfcs""#.to_owned(),
            resource: r#"System::"nfcs""#.to_owned(),
            action_type: "Action".to_owned(),
            known_actions: Vec::new(),
        }
    }
}

impl CedarEvaluatorBuilder {
    /// Adds the policies in `text`; `name` appears in error messages and default policy ids.
    #[must_use]
    pub fn policies(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.policy_sources.push(Source::Text {
            name: name.into(),
            text: text.into(),
        });
        self
    }

    /// Adds the policies in a file, or, for a directory, in each of its `*.cedar` files (in
    /// name order) and takes its `*.cedarschema` file, if there is one, as the schema.
    #[must_use]
    pub fn policy_path(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if path.is_dir() {
            self.policy_sources.push(Source::Directory(path));
        } else {
            self.policy_sources.push(Source::File(path));
        }
        self
    }

    /// Uses the schema in `text` (Cedar schema syntax).
    #[must_use]
    pub fn schema(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.schema = Some(Source::Text {
            name: name.into(),
            text: text.into(),
        });
        self
    }

    /// Uses the schema in a file (Cedar schema syntax).
    #[must_use]
    pub fn schema_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.schema = Some(Source::File(path.into()));
        self
    }

    /// The principal of every request, as a Cedar entity uid (default `Agent::"nfcs"`).
    #[must_use]
    pub fn principal(mut self, uid: impl Into<String>) -> Self {
        self.principal = uid.into();
        self
    }

    /// The resource of every request, as a Cedar entity uid (default `System::"nfcs"`).
    #[must_use]
    pub fn resource(mut self, uid: impl Into<String>) -> Self {
        self.resource = uid.into();
        self
    }

    /// The entity type of actions (default `Action`; `NFCS::Action` for a namespaced schema).
    #[must_use]
    pub fn action_type(mut self, type_name: impl Into<String>) -> Self {
        self.action_type = type_name.into();
        self
    }

    /// Action types to accept besides those the schema declares or the policies name (for
    /// actions that only policies with an unconstrained `action` cover).
    #[must_use]
    pub fn known_actions<I, S>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_actions
            .extend(actions.into_iter().map(Into::into));
        self
    }

    /// Reads, parses and validates everything.
    ///
    /// # Errors
    /// A [`CedarLoadError`]: a file that cannot be read, a syntax error (with line and column),
    /// a schema error, a policy that does not validate against the schema, a duplicate id.
    pub fn build(self) -> Result<CedarEvaluator, CedarLoadError> {
        let mut texts: Vec<(String, String)> = Vec::new();
        let mut schema_source = self.schema.clone();
        for source in &self.policy_sources {
            match source {
                Source::Text { name, text } => texts.push((name.clone(), text.clone())),
                Source::File(path) => texts.push((path.display().to_string(), read(path)?)),
                Source::Directory(directory) => {
                    let (policy_files, schema_file) = scan_directory(directory)?;
                    if policy_files.is_empty() {
                        return Err(CedarLoadError::NoPolicies {
                            path: Some(directory.clone()),
                        });
                    }
                    for path in policy_files {
                        let text = read(&path)?;
                        texts.push((path.display().to_string(), text));
                    }
                    if schema_source.is_none() {
                        schema_source = schema_file.map(Source::File);
                    }
                }
            }
        }
        if texts.is_empty() {
            return Err(CedarLoadError::NoPolicies { path: None });
        }

        let schema = match &schema_source {
            None => None,
            Some(source) => {
                let (name, text) = match source {
                    Source::Text { name, text } => (name.clone(), text.clone()),
                    Source::File(path) | Source::Directory(path) => {
                        (path.display().to_string(), read(path)?)
                    }
                };
                let schema = Schema::from_cedarschema_str(&text)
                    .map(|(schema, _warnings)| schema)
                    .map_err(|error| {
                        let location = locate(&error, &text);
                        CedarLoadError::Schema {
                            source_name: name.clone(),
                            line: location.map(|(line, _)| line),
                            column: location.map(|(_, column)| column),
                            message: describe(&error),
                        }
                    })?;
                Some((schema, text))
            }
        };

        let mut policies = PolicySet::new();
        let mut fingerprint_parts: BTreeMap<String, String> = BTreeMap::new();
        for (name, text) in &texts {
            let parsed = PolicySet::from_str(text).map_err(|error| {
                let (line, column) = locate(&error, text).unwrap_or((1, 1));
                CedarLoadError::Syntax {
                    source_name: name.clone(),
                    line,
                    column,
                    message: describe(&error),
                }
            })?;
            // The parser names policies policy0, policy1, ... in source order.
            let mut numbered: Vec<_> = parsed.policies().collect();
            numbered.sort_by_key(|policy| {
                policy
                    .id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<u64>()
                    .unwrap_or(u64::MAX)
            });
            for policy in numbered {
                let id = match policy.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => format!("{name}:{}", policy.id()),
                };
                let renamed = policy.new_id(PolicyId::new(&id));
                fingerprint_parts.insert(id.clone(), renamed.to_string());
                policies
                    .add(renamed)
                    .map_err(|_| CedarLoadError::DuplicatePolicyId {
                        policy_id: id.clone(),
                        source_name: name.clone(),
                    })?;
            }
        }

        let parse_uid = |what: &'static str, text: &str| {
            EntityUid::from_str(text).map_err(|error| CedarLoadError::InvalidEntity {
                what,
                text: text.to_owned(),
                message: describe(&error),
            })
        };
        let principal = parse_uid("principal", &self.principal)?;
        let resource = parse_uid("resource", &self.resource)?;
        let action_type = EntityTypeName::from_str(&self.action_type).map_err(|error| {
            CedarLoadError::InvalidEntity {
                what: "action entity type",
                text: self.action_type.clone(),
                message: describe(&error),
            }
        })?;

        let mut known_actions: BTreeSet<String> = self.known_actions.iter().cloned().collect();
        let mut entities = Entities::empty();
        match &schema {
            Some((schema, _)) => {
                let validation =
                    Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
                if let Some(error) = validation.validation_errors().next() {
                    return Err(CedarLoadError::Validation {
                        policy_id: error.policy_id().to_string(),
                        message: describe(error),
                    });
                }
                for uid in schema.actions() {
                    if uid.type_name() == &action_type {
                        known_actions.insert(uid.id().unescaped().to_owned());
                    }
                }
                entities = schema
                    .action_entities()
                    .map_err(|error| CedarLoadError::Schema {
                        source_name: "schema".to_owned(),
                        line: None,
                        column: None,
                        message: describe(&error),
                    })?;
            }
            None => {
                for policy in policies.policies() {
                    let named = match policy.action_constraint() {
                        cedar_policy::ActionConstraint::Any => Vec::new(),
                        cedar_policy::ActionConstraint::Eq(uid) => vec![uid],
                        cedar_policy::ActionConstraint::In(uids) => uids,
                    };
                    for uid in named {
                        if uid.type_name() == &action_type {
                            known_actions.insert(uid.id().unescaped().to_owned());
                        }
                    }
                }
            }
        }

        let mut fingerprint = Vec::new();
        for (id, text) in &fingerprint_parts {
            for part in [id, text] {
                fingerprint.extend_from_slice(&(part.len() as u64).to_le_bytes());
                fingerprint.extend_from_slice(part.as_bytes());
            }
        }
        if let Some((_, text)) = &schema {
            fingerprint.extend_from_slice(b"schema");
            fingerprint.extend_from_slice(text.as_bytes());
        }
        for part in [&self.principal, &self.resource, &self.action_type] {
            fingerprint.extend_from_slice(&(part.len() as u64).to_le_bytes());
            fingerprint.extend_from_slice(part.as_bytes());
        }

        Ok(CedarEvaluator {
            inner: Arc::new(CedarInner {
                policy_count: fingerprint_parts.len(),
                policies,
                schema: schema.map(|(schema, _)| schema),
                entities,
                principal,
                resource,
                action_type,
                known_actions,
                authorizer: Authorizer::new(),
                policy_set_id: xxhash_rust::xxh3::xxh3_64(&fingerprint),
            }),
        })
    }
}

fn read(path: &Path) -> Result<String, CedarLoadError> {
    std::fs::read_to_string(path).map_err(|error| CedarLoadError::Io {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

fn scan_directory(directory: &Path) -> Result<(Vec<PathBuf>, Option<PathBuf>), CedarLoadError> {
    let io_error = |error: std::io::Error| CedarLoadError::Io {
        path: directory.to_owned(),
        message: error.to_string(),
    };
    let mut policies = Vec::new();
    let mut schema: Option<PathBuf> = None;
    for entry in std::fs::read_dir(directory).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("cedar") => policies.push(path),
            Some("cedarschema") => {
                if let Some(first) = schema.take() {
                    return Err(CedarLoadError::SeveralSchemas {
                        first,
                        second: path,
                    });
                }
                schema = Some(path);
            }
            _ => {}
        }
    }
    policies.sort();
    Ok((policies, schema))
}

/// A [`PolicyEvaluator`] that runs a Cedar policy set. Cheap to clone.
///
/// ```
/// use nfcs_policy_cache::cedar::CedarEvaluator;
/// use nfcs_policy_cache::{PolicyContext, PolicyEvaluator};
///
/// let constitution = CedarEvaluator::from_policies(r#"
///     @id("allow-low-risk")
///     permit(principal, action == Action::"deploy", resource) when { context.risk <= 5 };
/// "#)?;
/// let low = constitution.evaluate("deploy", &PolicyContext::new().with("risk", 2))?;
/// assert_eq!(low.reasons, ["allow-low-risk"]);
/// let high = constitution.evaluate("deploy", &PolicyContext::new().with("risk", 9))?;
/// assert!(!high.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CedarEvaluator {
    inner: Arc<CedarInner>,
}

struct CedarInner {
    policies: PolicySet,
    policy_count: usize,
    schema: Option<Schema>,
    entities: Entities,
    principal: EntityUid,
    resource: EntityUid,
    action_type: EntityTypeName,
    known_actions: BTreeSet<String>,
    authorizer: Authorizer,
    policy_set_id: u64,
}

impl fmt::Debug for CedarEvaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CedarEvaluator")
            .field("policies", &self.inner.policy_count)
            .field("schema", &self.inner.schema.is_some())
            .field("principal", &self.inner.principal.to_string())
            .field("resource", &self.inner.resource.to_string())
            .field("known_actions", &self.inner.known_actions)
            .field(
                "policy_set_id",
                &format_args!("{:016x}", self.inner.policy_set_id),
            )
            .finish()
    }
}

impl CedarEvaluator {
    /// A builder.
    pub fn builder() -> CedarEvaluatorBuilder {
        CedarEvaluatorBuilder::default()
    }

    /// An evaluator for the policies in `text`, without a schema.
    ///
    /// # Errors
    /// See [`CedarEvaluatorBuilder::build`].
    pub fn from_policies(text: &str) -> Result<CedarEvaluator, CedarLoadError> {
        CedarEvaluator::builder().policies("policies", text).build()
    }

    /// An evaluator for the policies in a file, or in a directory's `*.cedar` files with its
    /// `*.cedarschema` file as the schema.
    ///
    /// # Errors
    /// See [`CedarEvaluatorBuilder::build`].
    pub fn from_path(path: impl Into<PathBuf>) -> Result<CedarEvaluator, CedarLoadError> {
        CedarEvaluator::builder().policy_path(path).build()
    }

    /// The action types this evaluator accepts.
    pub fn known_actions(&self) -> impl Iterator<Item = &str> {
        self.inner.known_actions.iter().map(String::as_str)
    }

    /// Whether a schema is in use.
    pub fn has_schema(&self) -> bool {
        self.inner.schema.is_some()
    }

    fn unknown_action(&self, action: &str) -> EvaluationError {
        EvaluationError::UnknownAction {
            action: action.to_owned(),
            known: self.inner.known_actions.iter().take(20).cloned().collect(),
        }
    }
}

/// The context as the JSON Cedar reads, refusing what Cedar cannot represent.
fn cedar_json(context: &PolicyContext) -> Result<serde_json::Value, EvaluationError> {
    fn convert(
        value: &ContextValue,
        path: &mut String,
    ) -> Result<serde_json::Value, EvaluationError> {
        use serde_json::Value;
        Ok(match value {
            ContextValue::Null | ContextValue::Float(_) => {
                return Err(EvaluationError::UnsupportedValue {
                    path: path.clone(),
                    found: value.type_name(),
                    engine: "Cedar",
                });
            }
            ContextValue::Bool(flag) => Value::Bool(*flag),
            ContextValue::Int(number) => Value::from(*number),
            ContextValue::String(text) => Value::String(text.clone()),
            ContextValue::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let length = path.len();
                    path.push_str(&format!("[{index}]"));
                    out.push(convert(item, path)?);
                    path.truncate(length);
                }
                Value::Array(out)
            }
            ContextValue::Record(fields) => {
                let mut out = serde_json::Map::new();
                for (name, item) in fields {
                    let length = path.len();
                    path.push('.');
                    path.push_str(name);
                    out.insert(name.clone(), convert(item, path)?);
                    path.truncate(length);
                }
                Value::Object(out)
            }
        })
    }
    let mut out = serde_json::Map::new();
    let mut path = String::from("$");
    for (name, value) in context.iter() {
        path.truncate(1);
        path.push('.');
        path.push_str(name);
        out.insert(name.to_owned(), convert(value, &mut path)?);
    }
    Ok(serde_json::Value::Object(out))
}

impl PolicyEvaluator for CedarEvaluator {
    fn evaluate(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<PolicyDecision, EvaluationError> {
        let inner = &*self.inner;
        if !inner.known_actions.contains(action) {
            return Err(self.unknown_action(action));
        }
        let action_uid =
            EntityUid::from_type_name_and_id(inner.action_type.clone(), EntityId::new(action));
        let json = cedar_json(context)?;
        let cedar_context = Context::from_json_value(
            json,
            inner.schema.as_ref().map(|schema| (schema, &action_uid)),
        )
        .map_err(|error| EvaluationError::ContextSchema {
            action: action.to_owned(),
            reason: describe(&error),
        })?;
        let request = Request::new(
            inner.principal.clone(),
            action_uid,
            inner.resource.clone(),
            cedar_context,
            inner.schema.as_ref(),
        )
        .map_err(|error| match error {
            RequestValidationError::UndeclaredAction(_) => self.unknown_action(action),
            RequestValidationError::InvalidContext(_)
            | RequestValidationError::TypeOfContext(_) => EvaluationError::ContextSchema {
                action: action.to_owned(),
                reason: describe(&error),
            },
            other => EvaluationError::Other(describe(&other)),
        })?;
        let response = inner
            .authorizer
            .is_authorized(&request, &inner.policies, &inner.entities);
        let diagnostics = response.diagnostics();
        let mut reasons: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        reasons.sort();
        let mut errors: Vec<String> = diagnostics.errors().map(|error| describe(error)).collect();
        errors.sort();
        Ok(PolicyDecision {
            verdict: match response.decision() {
                Decision::Allow => Verdict::Allow,
                Decision::Deny => Verdict::Deny,
            },
            reasons,
            errors,
            policies_evaluated: inner.policy_count as u64,
        })
    }

    fn policy_set_id(&self) -> u64 {
        self.inner.policy_set_id
    }

    fn policy_count(&self) -> usize {
        self.inner.policy_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 3), (2, 1));
        assert_eq!(line_and_column(text, 7), (2, 4));
        assert_eq!(line_and_column(text, 8), (3, 1));
        // Inside the two bytes of "é": counted at the character's start.
        assert_eq!(line_and_column(text, 6), (2, 3));
        assert_eq!(line_and_column(text, 99), (3, 2));
    }
}
