//! The command line: global options and one enum of commands (clap derive).
//! The write commands are a separate enum so that `batch` lines are parsed by
//! exactly the same grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::input::{self, InputError};
use crate::journal::line::LineHash;
use crate::money::Decimal;
use crate::time::{At, TimeError};

/// An exact, append-only money ledger built on event sourcing.
///
/// Every write becomes events appended to a journal (JSON Lines, SHA-256
/// hash chain); every read replays it.
#[derive(Debug, Parser)]
#[command(name = "ledger", version, max_term_width = 100)]
#[command(after_help = "Examples:
  ledger create acct1 --owner alice
  ledger deposit acct1 50
  ledger transfer acct1 acct2 10.25 --memo lunch --id pay-17
  ledger balance --json")]
pub struct Cli {
    /// The journal file [env: LEDGER_JOURNAL; default: journal.jsonl in the
    /// platform data directory]
    // LEDGER_JOURNAL is read by `cmd::run`, not clap's `env`, so that an
    // empty value means unset instead of an error about --file.
    #[arg(short = 'f', long, global = true, value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Shorthand for --format json.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The output format, with `--json` taken into account.
    pub fn output_format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON (JSON Lines for events).
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    #[allow(missing_docs)]
    Write(WriteCommand),
    /// Show balances (all accounts when none is named), with totals per currency.
    #[command(after_help = "Examples:
  ledger balance
  ledger balance acct1 acct2 --as-of 2026-11-30
  ledger balance --as-of 120 --format csv")]
    Balance(BalanceArgs),
    /// Show events in order; for one account, with its running balance.
    #[command(after_help = "Examples:
  ledger history
  ledger history acct1 --since 2026-11-01 --until 2026-11-30
  ledger history --limit 20 --json
  ledger history --follow --from-seq 120 --json")]
    History(HistoryArgs),
    /// Run many write commands from a file or stdin, all or nothing.
    ///
    /// One command per line, in the same words as the command line, with
    /// shell quoting; blank lines and lines starting with # are skipped. Every
    /// line is checked against the state the lines before it leave; if any is
    /// refused nothing is written. Otherwise all events are appended at once,
    /// with one fsync.
    #[command(after_help = "Example:
  printf 'create acct1\\ndeposit acct1 50 --memo \"rent for May\" --id may-rent\\n' | ledger batch")]
    Batch(BatchArgs),
    /// Audit the journal: replay it in full and check every line and rule.
    ///
    /// Checks the header, every line's JSON, schema and canonical form, seq
    /// contiguity, time order, the SHA-256 prev chain, batch counts, and that
    /// every event obeyed the rules when it was appended. Prints the events,
    /// accounts, totals per currency and the head (seq and hash): record the
    /// head, and a later `verify --expect-head HASH` proves history was only
    /// appended to since.
    #[command(after_help = "Examples:
  ledger verify
  ledger verify --quiet > head.txt
  ledger verify --expect-head \"$(cut -d' ' -f2 head.txt)\"")]
    Verify(VerifyArgs),
    /// Print a shell completion script.
    #[command(after_help = "Example:
  ledger completions bash > ~/.local/share/bash-completion/completions/ledger")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The commands that append events.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum WriteCommand {
    /// Open an account.
    #[command(after_help = "Examples:
  ledger create acct1 --owner alice
  ledger create eur1 --currency EUR --decimals 2")]
    Create(CreateArgs),
    /// Put money into an account from outside.
    #[command(after_help = "Example:
  ledger deposit acct1 50.25 --memo salary --id salary-2026-11")]
    Deposit(MoveArgs),
    /// Take money out of an account; never below zero.
    #[command(after_help = "Example:
  ledger withdraw acct1 20")]
    Withdraw(MoveArgs),
    /// Move money between two accounts of the same currency, atomically.
    #[command(after_help = "Example:
  ledger transfer acct1 acct2 10.25 --memo lunch --id pay-17")]
    Transfer(TransferArgs),
    /// Close an account whose balance is zero.
    #[command(after_help = "Example:
  ledger close acct1")]
    Close(CloseArgs),
}

impl WriteCommand {
    /// Sets the argument clap calls `id` from one word, through the very
    /// value parser clap uses for it (so batch lines whose shape clap has
    /// already parsed need not go through all of clap again). `None` if this
    /// command has no such argument; `Some(Err(()))` if the word is invalid,
    /// for which clap is asked again, for its own message.
    pub fn set_arg(&mut self, id: &str, word: &str) -> Option<Result<(), ()>> {
        fn set<T, E>(field: &mut T, value: Result<T, E>) -> Result<(), ()> {
            *field = value.map_err(drop)?;
            Ok(())
        }
        use WriteCommand::{Close, Create, Deposit, Transfer, Withdraw};
        Some(match (self, id) {
            (Create(a), "account") => set(&mut a.account, account(word)),
            (Create(a), "owner") => set(&mut a.owner, owner(word).map(Some)),
            (Create(a), "currency") => set(&mut a.currency, currency(word).map(Some)),
            (Create(a), "decimals") => set(&mut a.decimals, decimals(word)),
            (Deposit(a) | Withdraw(a), "account") => set(&mut a.account, account(word)),
            (Deposit(a) | Withdraw(a), "amount") => set(&mut a.amount, amount(word)),
            (Transfer(a), "from") => set(&mut a.from, account(word)),
            (Transfer(a), "to") => set(&mut a.to, account(word)),
            (Transfer(a), "amount") => set(&mut a.amount, amount(word)),
            (Close(a), "account") => set(&mut a.account, account(word)),
            (cmd, "memo") => set(&mut cmd.opts_mut().memo, memo(word).map(Some)),
            (cmd, "id") => set(&mut cmd.opts_mut().id, key(word).map(Some)),
            (cmd, "expect_seq") => set(&mut cmd.opts_mut().expect_seq, seq(word).map(Some)),
            _ => return None,
        })
    }

    fn opts_mut(&mut self) -> &mut WriteOpts {
        match self {
            WriteCommand::Create(a) => &mut a.opts,
            WriteCommand::Deposit(a) | WriteCommand::Withdraw(a) => &mut a.opts,
            WriteCommand::Transfer(a) => &mut a.opts,
            WriteCommand::Close(a) => &mut a.opts,
        }
    }
}

/// Options every write takes.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WriteOpts {
    /// A note stored with the event (at most 500 characters).
    #[arg(long, value_name = "TEXT", value_parser = memo)]
    pub memo: Option<String>,
    /// An idempotency key: repeating the command with it writes nothing twice.
    #[arg(long, value_name = "KEY", value_parser = key)]
    pub id: Option<String>,
    /// Append only if the journal's last seq is still N (0 for an empty journal).
    #[arg(long, value_name = "N", value_parser = seq)]
    pub expect_seq: Option<u64>,
}

/// `create`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CreateArgs {
    /// The new account's name.
    #[arg(value_parser = account)]
    pub account: String,
    /// Who holds the account.
    #[arg(long, value_name = "NAME", value_parser = owner)]
    pub owner: Option<String>,
    /// Currency code (1-10 of A-Z 0-9); absent means a plain unit.
    #[arg(long, value_name = "CODE", value_parser = currency)]
    pub currency: Option<String>,
    /// Digits after the point (0-18).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = decimals)]
    pub decimals: u8,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `deposit` and `withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct MoveArgs {
    /// The account.
    #[arg(value_parser = account)]
    pub account: String,
    /// How much: digits, optionally a point and up to the account's decimals.
    #[arg(value_parser = amount, allow_hyphen_values = true)]
    pub amount: Decimal,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TransferArgs {
    /// The account debited.
    #[arg(value_parser = account)]
    pub from: String,
    /// The account credited.
    #[arg(value_parser = account)]
    pub to: String,
    /// How much.
    #[arg(value_parser = amount, allow_hyphen_values = true)]
    pub amount: Decimal,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `close`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CloseArgs {
    /// The account.
    #[arg(value_parser = account)]
    pub account: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `batch`.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The file of commands; `-` or absent reads stdin.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Check every line and print what would be appended, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One line of a batch: a write command, parsed by the same grammar as the
/// command line.
#[derive(Debug, Parser)]
#[command(
    name = "batch",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct BatchLine {
    /// The command.
    #[command(subcommand)]
    pub command: WriteCommand,
}

/// `verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Also fail unless this SHA-256 (64 hex digits) is the hash of the last
    /// line or of an earlier one.
    #[arg(long, value_name = "HASH", value_parser = head_hash)]
    pub expect_head: Option<LineHash>,
    /// Print only `SEQ HASH` of the head.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `balance`.
#[derive(Debug, Clone, Args)]
pub struct BalanceArgs {
    /// Accounts to show (all when none).
    #[arg(value_parser = account)]
    pub accounts: Vec<String>,
    /// State after a seq, an RFC 3339 timestamp, or the end of a date (UTC).
    #[arg(long, value_name = "AT", value_parser = as_of)]
    pub as_of: Option<AsOf>,
}

/// `history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Only this account's events, with its running balance.
    #[arg(value_parser = account)]
    pub account: Option<String>,
    /// Only events up to a seq, a timestamp, or the end of a date.
    #[arg(long, value_name = "AT", value_parser = as_of)]
    pub as_of: Option<AsOf>,
    /// Only events at or after this timestamp or date (from its first instant).
    #[arg(long, value_name = "T", value_parser = since)]
    pub since: Option<At>,
    /// Only events at or before this timestamp or date (to its last instant).
    #[arg(long, value_name = "T", value_parser = until)]
    pub until: Option<At>,
    /// Keep only the last N of the selected events (with --follow: of
    /// those already in the journal).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only events after seq N: a consumer that recorded the last seq it
    /// handled resumes with it, without gaps or repeats.
    #[arg(long, value_name = "N")]
    pub from_seq: Option<u64>,
    /// Keep running: after the history, print each new event once the
    /// append it belongs to is complete and durable, until interrupted or
    /// the output closes (both exit 0).
    #[arg(long, conflicts_with_all = ["as_of", "until"])]
    pub follow: bool,
}

/// A point in the journal's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After this seq.
    Seq(u64),
    /// Every event at or before this instant.
    At(At),
}

impl AsOf {
    /// Whether an event at `seq`, `at` falls within the bound.
    pub fn includes(self, seq: u64, at: At) -> bool {
        match self {
            AsOf::Seq(n) => seq <= n,
            AsOf::At(t) => at <= t,
        }
    }
}

fn account(s: &str) -> Result<String, InputError> {
    input::account(s).map(|()| s.to_owned())
}

fn currency(s: &str) -> Result<String, InputError> {
    input::currency(s).map(|()| s.to_owned())
}

fn owner(s: &str) -> Result<String, InputError> {
    input::owner(s).map(|()| s.to_owned())
}

fn memo(s: &str) -> Result<String, InputError> {
    input::memo(s).map(|()| s.to_owned())
}

fn key(s: &str) -> Result<String, InputError> {
    input::key(s).map(|()| s.to_owned())
}

fn decimals(s: &str) -> Result<u8, String> {
    let n: u8 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of decimals (0-18)"))?;
    input::decimals(n).map_err(|e| e.to_string())?;
    Ok(n)
}

fn seq(s: &str) -> Result<u64, std::num::ParseIntError> {
    s.parse()
}

fn amount(s: &str) -> Result<Decimal, InputError> {
    Ok(Decimal::parse_positive(s)?)
}

fn as_of(s: &str) -> Result<AsOf, TimeError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // A seq past the end, however large, is the latest state (SPEC 1):
        // one past u64 is as good as any.
        return Ok(AsOf::Seq(s.parse().unwrap_or(u64::MAX)));
    }
    At::parse_bound(s, true).map(AsOf::At)
}

fn head_hash(s: &str) -> Result<LineHash, String> {
    LineHash::from_hex(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("'{s}' is not a SHA-256 hash (64 hex digits)"))
}

fn since(s: &str) -> Result<At, TimeError> {
    At::parse_bound(s, false)
}

fn until(s: &str) -> Result<At, TimeError> {
    At::parse_bound(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn as_of_reads_seqs_dates_and_timestamps() {
        assert_eq!(as_of("12"), Ok(AsOf::Seq(12)));
        assert_eq!(
            as_of("2026-11-26"),
            Ok(AsOf::At(
                At::parse_bound("2026-11-26T23:59:59.999999Z", true).unwrap()
            ))
        );
        assert!(as_of("tomorrow").is_err());
    }
}
