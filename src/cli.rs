//! The command line: global options and one enum of commands (clap derive).
//! The write commands are a separate enum so that `batch` lines are parsed by
//! exactly the same grammar.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::input::{self, InputError};
use crate::journal::line::LineHash;
use crate::money::Decimal;
use crate::time::{At, Day, TimeError, Zone};

/// An exact, append-only money ledger built on event sourcing.
///
/// Every write becomes events appended to a journal (JSON Lines, SHA-256
/// hash chain); every read replays it.
#[derive(Debug, Parser)]
// The description follows the version so that `ledger --version` tells this
// ledger from ledger-cli, which also installs a `ledger`.
#[command(
    name = "ledger",
    version = concat!(env!("CARGO_PKG_VERSION"), " — an exact, append-only money ledger (event sourcing)"),
    max_term_width = 100
)]
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

    /// Time zone for dates typed, days of events and times shown (an IANA
    /// name such as Europe/Paris, or UTC) [default: TZ, else the system's]
    #[arg(long, global = true, value_name = "ZONE", value_parser = zone)]
    pub tz: Option<Zone>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments with [`command`].
    pub fn parse_args() -> Result<Cli, clap::Error> {
        command()
            .try_get_matches()
            .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
    }

    /// The output format, with `--json` taken into account.
    pub fn output_format(&self) -> Format {
        if self.json { Format::Json } else { self.format }
    }
}

/// The command line's definition, with the global options shown once, in
/// `ledger --help`: clap copies them into every subcommand, whose help would
/// otherwise repeat them.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    let globals: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    cmd.mut_subcommands(|sub| {
        sub.mut_args(|a| {
            if globals.contains(a.get_id()) {
                a.hide(true)
            } else {
                a
            }
        })
    })
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
    /// Per account and period: opening balance, money in, money out,
    /// closing balance and events, with totals per currency.
    #[command(after_help = "Examples:
  ledger report --by month --since 2026-10-01 --until 2026-12-31
  ledger report 'cust:*' --by month --since 2026-10-01 --until 2026-10-31 --format csv
  ledger report acct1 --by week --tag project=apollo --json")]
    Report(crate::cmd::report::ReportArgs),
    /// Draw the closing balance per period of accounts as lines, to an SVG
    /// or PNG file.
    #[command(after_help = "Examples:
  ledger chart acct1 acct2 --out balances.svg
  ledger chart 'cust:*' --by month --since 2026-01-01 --out customers.png")]
    Chart(crate::cmd::chart::ChartArgs),
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
    /// Import JSON Lines commands, or a bank's CSV mapped by rules, all or
    /// nothing (like batch).
    ///
    /// Without --rules, each line is a JSON object: {"command":"deposit",
    /// "account":"acct1","amount":"50.25", ...}, amounts as strings. With
    /// --rules R.toml, each CSV row becomes a deposit, withdrawal or
    /// transfer as the rules say; rows get an id derived from their
    /// content, so importing an overlapping file again adds nothing twice.
    #[command(after_help = "Examples:
  ledger import commands.jsonl
  ledger import bank.csv --rules bank.toml --dry-run
  ledger import bank.csv --rules bank.toml")]
    Import(ImportArgs),
    /// Write the journal in another tool's format: ledger-cli/hledger,
    /// beancount, or the journal's own JSON Lines.
    #[command(after_help = "Examples:
  ledger export --to ledger > books.journal && hledger -f books.journal bal
  ledger export --to beancount > books.beancount && fava books.beancount
  ledger export --to jsonl > copy.jsonl")]
    Export(ExportArgs),
    /// Audit the journal: replay it in full and check every line and rule.
    ///
    /// Checks the header, every line's JSON, schema and canonical form, seq
    /// contiguity, time order, the SHA-256 prev chain, batch counts, and that
    /// every event obeyed the rules when it was appended. Prints the events,
    /// accounts, totals per currency and the head (seq and hash): record the
    /// head, and a later `verify --expect-head HEAD` proves history was only
    /// appended to since.
    #[command(after_help = "Examples:
  ledger verify
  ledger verify --quiet > head.txt
  ledger verify --expect-head \"$(cat head.txt)\"")]
    Verify(VerifyArgs),
    /// Copy a whole journal to another location (file or PostgreSQL),
    /// checking every line on the way as `verify` does.
    ///
    /// The destination must not exist or hold no event; the copy is all or
    /// nothing, and `export --to jsonl` of the copy equals the source's
    /// lines byte for byte. --file and LEDGER_JOURNAL play no part.
    #[command(after_help = "Examples:
  ledger copy ~/.local/share/ledger/journal.jsonl postgresql://ledger@db.internal/books
  ledger copy postgresql://ledger@db.internal/books backup.jsonl")]
    Copy(CopyArgs),
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
    /// Reserve money for a later capture: an order awaiting shipment, a
    /// card authorisation.
    ///
    /// The money stays in the account (its balance) but is no longer
    /// available to withdraw, transfer or hold again, until the hold is
    /// captured, released, or expires.
    #[command(after_help = "Examples:
  ledger hold cust:C007 25 --to shop --expires 2026-12-31 --id order-88
  ledger hold acct1 10 --expires 2026-11-30T18:00:00Z")]
    Hold(HoldArgs),
    /// Complete a hold: move its money (all of it, or AMOUNT) to its --to
    /// account, or out of the ledger; the rest is freed.
    #[command(after_help = "Examples:
  ledger capture 42
  ledger capture --of-id order-88 20.50")]
    Capture(CaptureArgs),
    /// Cancel a hold: all its money is free again (also after it expired).
    #[command(after_help = "Examples:
  ledger release 42
  ledger release --of-id order-88")]
    Release(ReleaseArgs),
    /// Undo a money movement with its mirror image (a deposit with a
    /// withdrawal, a transfer with the transfer back).
    ///
    /// The original stays in the journal; the reversal names it. Give the
    /// reversal the original's --date to net it out of that period.
    #[command(after_help = "Examples:
  ledger reverse 42 --memo \"typed 500 for 50\"
  ledger reverse --of-id pay-17 --date 2026-10-03")]
    Reverse(ReverseArgs),
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
        use WriteCommand::{
            Capture, Close, Create, Deposit, Hold, Release, Reverse, Transfer, Withdraw,
        };
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
            (Reverse(a), "seq") => set(&mut a.seq, seq(word).map(Some)),
            (Hold(a), "account") => set(&mut a.account, account(word)),
            (Hold(a), "amount") => set(&mut a.amount, amount(word)),
            (Hold(a), "to") => set(&mut a.to, account(word).map(Some)),
            (Hold(a), "expires") => set(&mut a.expires, until(word).map(Some)),
            (Capture(a), "first") => set(&mut a.first, Ok::<_, ()>(Some(word.to_owned()))),
            (Capture(a), "second") => set(&mut a.second, Ok::<_, ()>(Some(word.to_owned()))),
            (Capture(a), "of_id") => set(&mut a.of_id, key(word).map(Some)),
            (Release(a), "of_id") => set(&mut a.of_id, key(word).map(Some)),
            (Release(a), "first") => set(&mut a.first, Ok::<_, ()>(Some(word.to_owned()))),
            (Reverse(a), "of_id") => set(&mut a.of_id, key(word).map(Some)),
            (cmd, "memo") => set(&mut cmd.opts_mut().memo, memo(word).map(Some)),
            (cmd, "date") => set(&mut cmd.opts_mut().date, day(word).map(Some)),
            // A learned shape has one `--tag` at most (see `cmd::batch::parse`).
            (cmd, "tags") => set(&mut cmd.opts_mut().tags, tag(word).map(|t| vec![t])),
            (cmd, "id") => set(&mut cmd.opts_mut().id, key(word).map(Some)),
            (cmd, "expect_seq") => set(&mut cmd.opts_mut().expect_seq, seq(word).map(Some)),
            _ => return None,
        })
    }

    /// Empties the account names this command holds, keeping nothing of
    /// them to copy: a batch's template of a line, whose required words
    /// every line it reads sets, is then cloned without allocating.
    pub fn clear_names(&mut self) {
        use WriteCommand::{Close, Create, Deposit, Hold, Transfer, Withdraw};
        match self {
            Create(CreateArgs { account, .. })
            | Deposit(MoveArgs { account, .. })
            | Withdraw(MoveArgs { account, .. })
            | Close(CloseArgs { account, .. })
            | Hold(HoldArgs { account, .. }) => account.clear(),
            Transfer(TransferArgs { from, to, .. }) => {
                from.clear();
                to.clear();
            }
            _ => {}
        }
    }

    /// The options every write takes, to set.
    pub fn opts_mut(&mut self) -> &mut WriteOpts {
        match self {
            WriteCommand::Create(a) => &mut a.opts,
            WriteCommand::Deposit(a) | WriteCommand::Withdraw(a) => &mut a.opts,
            WriteCommand::Transfer(a) => &mut a.opts,
            WriteCommand::Close(a) => &mut a.opts,
            WriteCommand::Reverse(a) => &mut a.opts,
            WriteCommand::Hold(a) => &mut a.opts,
            WriteCommand::Capture(a) => &mut a.opts,
            WriteCommand::Release(a) => &mut a.opts,
        }
    }

    /// The accounts it names (a reversal's, a capture's and a release's
    /// are in the events they name, and not here).
    pub fn accounts(&self) -> [Option<&str>; 2] {
        match self {
            WriteCommand::Create(a) => [Some(&a.account), None],
            WriteCommand::Deposit(a) | WriteCommand::Withdraw(a) => [Some(&a.account), None],
            WriteCommand::Transfer(a) => [Some(&a.from), Some(&a.to)],
            WriteCommand::Close(a) => [Some(&a.account), None],
            WriteCommand::Hold(a) => [Some(&a.account), a.to.as_deref()],
            WriteCommand::Reverse(_) | WriteCommand::Capture(_) | WriteCommand::Release(_) => {
                [None, None]
            }
        }
    }

    /// Every `--id` and `--of-id` it names: all the ids the request made
    /// of it names ([`Request::ids`](crate::domain::Request::ids)), and
    /// more when it is refused for naming too many.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        let of_id = match self {
            WriteCommand::Reverse(a) => a.of_id.as_deref(),
            WriteCommand::Capture(a) => a.of_id.as_deref(),
            WriteCommand::Release(a) => a.of_id.as_deref(),
            _ => None,
        };
        self.opts().id.as_deref().into_iter().chain(of_id)
    }

    /// The options every write takes.
    pub fn opts(&self) -> &WriteOpts {
        match self {
            WriteCommand::Create(a) => &a.opts,
            WriteCommand::Deposit(a) | WriteCommand::Withdraw(a) => &a.opts,
            WriteCommand::Transfer(a) => &a.opts,
            WriteCommand::Close(a) => &a.opts,
            WriteCommand::Reverse(a) => &a.opts,
            WriteCommand::Hold(a) => &a.opts,
            WriteCommand::Capture(a) => &a.opts,
            WriteCommand::Release(a) => &a.opts,
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
    /// The day the event belongs to in the books (YYYY-MM-DD), if not the
    /// day it is recorded: a bank's booking day, an invoice's date.
    #[arg(long, value_name = "DATE", value_parser = day)]
    pub date: Option<Day>,
    /// Attach a tag (repeatable; at most 16).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag)]
    pub tags: Vec<Tag>,
    /// The currencies the amount's text names: an imported row's (`3
    /// JPY`), never the command line's.
    #[arg(skip)]
    pub written_in: Option<crate::domain::WrittenIn>,
}

/// A tag typed as `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

/// `hold`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct HoldArgs {
    /// The account whose money is held.
    #[arg(value_parser = account)]
    pub account: String,
    /// How much.
    #[arg(value_parser = amount, allow_negative_numbers = true)]
    pub amount: Decimal,
    /// The account a capture credits (same currency); without it, a
    /// capture takes the money out of the ledger.
    #[arg(long, value_name = "ACCOUNT", value_parser = account)]
    pub to: Option<String>,
    /// When the hold lapses: a timestamp, or a date (the end of that day
    /// in --tz).
    #[arg(long, value_name = "T", value_parser = until)]
    pub expires: Option<Bound>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `capture` and `release`: the hold is `HOLD` (its seq) or `--of-id KEY`;
/// `capture` may add an AMOUNT. The words are read when the command is
/// built, since which one is the amount depends on `--of-id`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct HoldRefArgs {
    /// The hold's seq (with --of-id: capture's AMOUNT).
    #[arg(value_name = "HOLD", allow_negative_numbers = true)]
    pub first: Option<String>,
    /// How much to capture (default: all of it).
    #[arg(value_name = "AMOUNT", allow_negative_numbers = true)]
    pub second: Option<String>,
    /// The hold placed with this --id.
    #[arg(long, value_name = "KEY", value_parser = key)]
    pub of_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `capture`.
pub type CaptureArgs = HoldRefArgs;

/// `release` (no AMOUNT).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ReleaseArgs {
    /// The hold's seq.
    #[arg(value_name = "HOLD")]
    pub first: Option<String>,
    /// The hold placed with this --id.
    #[arg(long, value_name = "KEY", value_parser = key)]
    pub of_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
}

/// `reverse`: `SEQ` or `--of-id KEY`, exactly one (checked when the
/// command is built, so that batch lines of this command keep one shape).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ReverseArgs {
    /// The seq of the movement to undo.
    #[arg(value_name = "SEQ", value_parser = seq)]
    pub seq: Option<u64>,
    /// The movement written with this --id.
    #[arg(long, value_name = "KEY", value_parser = key)]
    pub of_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: WriteOpts,
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
    // Negative numbers, not every word with a hyphen: `-5` reaches the
    // amount's own message, `--ammount` is an unknown option.
    #[arg(value_parser = amount, allow_negative_numbers = true)]
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
    #[arg(value_parser = amount, allow_negative_numbers = true)]
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

/// `import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file of records; `-` or absent reads stdin.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Read the input as CSV, mapped by these rules (TOML).
    #[arg(long, value_name = "RULES")]
    pub rules: Option<PathBuf>,
    /// Check every record and print what would be appended, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The format.
    #[arg(long, value_enum)]
    pub to: ExportFormat,
    /// Only events at or after this timestamp, or whose day is on or after this date.
    #[arg(long, value_name = "T", value_parser = since)]
    pub since: Option<Bound>,
    /// Only events at or before this timestamp, or whose day is on or before this date.
    #[arg(long, value_name = "T", value_parser = until)]
    pub until: Option<Bound>,
    /// Only events with this tag (KEY=VALUE), or with this key (KEY);
    /// repeatable, all must hold.
    #[arg(long = "tag", value_name = "KEY[=VALUE]", value_parser = tag_filter)]
    pub tags: Vec<TagFilter>,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A plain-text journal for ledger-cli and hledger.
    Ledger,
    /// A beancount file (for bean-check, Fava).
    Beancount,
    /// The journal's own lines, byte for byte.
    Jsonl,
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

/// `copy`.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The journal to copy: a file, or a postgresql:// URL.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Where to: a file, or a postgresql:// URL.
    #[arg(value_name = "DESTINATION")]
    pub destination: PathBuf,
}

/// `verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Also fail unless this head, recorded earlier, is still in the
    /// journal: `SEQ HASH` as --quiet prints it (the line holding that seq
    /// must have that hash), or a bare SHA-256 (64 hex digits) of any line.
    #[arg(long, value_name = "HEAD", value_parser = anchor)]
    pub expect_head: Option<Anchor>,
    /// Print only `SEQ HASH` of the head.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `balance`.
#[derive(Debug, Clone, Args)]
pub struct BalanceArgs {
    /// Accounts to show, or patterns such as 'cust:*' (all when none).
    #[arg(value_name = "ACCOUNT", value_parser = account_or_pattern)]
    pub accounts: Vec<String>,
    /// State after a seq, at an RFC 3339 timestamp, or by the end of a
    /// date (events whose day is on or before it: the books of that day).
    #[arg(long, value_name = "AT", value_parser = as_of)]
    pub as_of: Option<AsOf>,
}

/// `history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Only this account's events, with its running balance and each
    /// event's change; or a pattern such as 'cust:*' (no balance then).
    #[arg(value_name = "ACCOUNT", value_parser = account_or_pattern)]
    pub account: Option<String>,
    /// Only events up to a seq, a timestamp, or whose day is on or before a date.
    #[arg(long, value_name = "AT", value_parser = as_of)]
    pub as_of: Option<AsOf>,
    /// Only events at or after this timestamp, or whose day is on or after this date.
    #[arg(long, value_name = "T", value_parser = since)]
    pub since: Option<Bound>,
    /// Only events at or before this timestamp, or whose day is on or before this date.
    #[arg(long, value_name = "T", value_parser = until)]
    pub until: Option<Bound>,
    /// Only events with this tag (KEY=VALUE), or with this key (KEY);
    /// repeatable, all must hold.
    #[arg(long = "tag", value_name = "KEY[=VALUE]", value_parser = tag_filter)]
    pub tags: Vec<TagFilter>,
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

impl HistoryArgs {
    /// Whether a bound selects by day: then the events are listed by day
    /// (SPEC 9).
    pub fn by_day(&self) -> bool {
        matches!(self.as_of, Some(AsOf::Day(_)))
            || matches!(self.since, Some(Bound::Day(_)))
            || matches!(self.until, Some(Bound::Day(_)))
    }
}

/// `--tag KEY=VALUE` or `--tag KEY` on a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// The key the event must have.
    pub key: String,
    /// The value it must have there, if given.
    pub value: Option<String>,
}

impl TagFilter {
    /// Whether an event carries this tag.
    pub fn matches(&self, event: &crate::event::Event<'_>) -> bool {
        match (event.tag(&self.key), &self.value) {
            (Some(v), Some(want)) => v == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A point in the journal's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After this seq.
    Seq(u64),
    /// Every event at or before this instant.
    At(At),
    /// Every event whose day is on or before this one.
    Day(Day),
}

impl AsOf {
    /// Whether an event falls within the bound; `zone` counts the days of
    /// undated events.
    pub fn includes(self, event: &crate::event::Event<'_>, zone: &Zone) -> bool {
        match self {
            AsOf::Seq(n) => event.seq <= n,
            AsOf::At(t) => event.at <= t,
            AsOf::Day(d) => event.day(zone) <= d,
        }
    }

    /// Whether the bound takes in every event up to a point of the
    /// journal (a seq or an instant): then the state at that point is the
    /// answer, and a checkpoint before it may serve.
    pub fn includes_prefix(self, seq: u64, at: At) -> Option<bool> {
        match self {
            AsOf::Seq(n) => Some(seq <= n),
            AsOf::At(t) => Some(at <= t),
            AsOf::Day(_) => None,
        }
    }
}

/// A `--since` or `--until` bound: an instant, or a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Selects by `at`.
    At(At),
    /// Selects by the event's day.
    Day(Day),
}

impl Bound {
    /// Whether an event is at or after this bound.
    pub fn admits_from(self, event: &crate::event::Event<'_>, zone: &Zone) -> bool {
        match self {
            Bound::At(t) => event.at >= t,
            Bound::Day(d) => event.day(zone) >= d,
        }
    }

    /// Whether an event is at or before this bound.
    pub fn admits_to(self, event: &crate::event::Event<'_>, zone: &Zone) -> bool {
        match self {
            Bound::At(t) => event.at <= t,
            Bound::Day(d) => event.day(zone) <= d,
        }
    }
}

fn account(s: &str) -> Result<String, InputError> {
    input::account(s).map(|()| s.to_owned())
}

/// An ACCOUNT argument of a read: a name, or a pattern (SPEC 1).
pub(crate) fn account_or_pattern(s: &str) -> Result<String, InputError> {
    crate::pattern::check(s).map(|()| s.to_owned())
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

pub(crate) fn seq(s: &str) -> Result<u64, std::num::ParseIntError> {
    s.parse()
}

pub(crate) fn amount(s: &str) -> Result<Decimal, InputError> {
    Ok(Decimal::parse_positive(s)?)
}

fn as_of(s: &str) -> Result<AsOf, TimeError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // A seq past the end, however large, is the latest state (SPEC 1):
        // one past u64 is as good as any.
        return Ok(AsOf::Seq(s.parse().unwrap_or(u64::MAX)));
    }
    Ok(match bound(s, true)? {
        Bound::At(t) => AsOf::At(t),
        Bound::Day(d) => AsOf::Day(d),
    })
}

fn bound(s: &str, end: bool) -> Result<Bound, TimeError> {
    match Day::parse(s) {
        Some(day) => Ok(Bound::Day(day)),
        None => At::parse_bound(s, end).map(Bound::At),
    }
}

fn day(s: &str) -> Result<Day, String> {
    Day::parse(s).ok_or_else(|| format!("'{s}' is not a date like 2026-11-26 (YYYY-MM-DD)"))
}

fn tag(s: &str) -> Result<Tag, InputError> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| InputError::Tag(s.to_owned()))?;
    input::tag(key, value)?;
    Ok(Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

pub(crate) fn tag_filter(s: &str) -> Result<TagFilter, InputError> {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (s, None),
    };
    // Named as typed: a bare KEY is no `KEY=`.
    input::tag(key, value.unwrap_or_default()).map_err(|_| InputError::Tag(s.to_owned()))?;
    Ok(TagFilter {
        key: key.to_owned(),
        value: value.map(str::to_owned),
    })
}

fn zone(s: &str) -> Result<Zone, String> {
    Zone::named(s).ok_or_else(|| {
        format!("unknown time zone '{s}' (use an IANA name such as Europe/Paris, or UTC)")
    })
}

/// A head recorded earlier, for `verify --expect-head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The seq of the line it names, when given (`SEQ HASH`, as `verify
    /// --quiet` prints it; 0 is the header, or an empty file).
    pub seq: Option<u64>,
    /// The line's hash.
    pub hash: LineHash,
}

/// The one reading of an anchor: `SEQ HASH` (what `verify --quiet` prints,
/// passed back as one argument) or a bare hash.
fn anchor(s: &str) -> Result<Anchor, String> {
    let bad = || {
        format!(
            "'{s}' is not a head: give SEQ HASH as `verify --quiet` prints it, or a SHA-256 hash (64 hex digits)"
        )
    };
    let (seq, hex) = match s.split_once(' ') {
        Some((seq, hex)) if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(seq.parse().map_err(|_| bad())?), hex)
        }
        Some(_) => return Err(bad()),
        None => (None, s),
    };
    let hash = LineHash::from_hex(&hex.to_ascii_lowercase()).ok_or_else(bad)?;
    Ok(Anchor { seq, hash })
}

pub(crate) fn since(s: &str) -> Result<Bound, TimeError> {
    bound(s, false)
}

pub(crate) fn until(s: &str) -> Result<Bound, TimeError> {
    bound(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn as_of_reads_seqs_dates_and_timestamps() {
        assert_eq!(as_of("12"), Ok(AsOf::Seq(12)));
        assert_eq!(as_of("99999999999999999999999"), Ok(AsOf::Seq(u64::MAX)));
        assert_eq!(
            as_of("2026-11-26"),
            Ok(AsOf::Day(Day::parse("2026-11-26").unwrap()))
        );
        assert_eq!(
            as_of("2026-11-26T10:00:00Z"),
            Ok(AsOf::At(At::parse_instant("2026-11-26T10:00:00Z").unwrap()))
        );
        assert!(as_of("tomorrow").is_err());
    }

    #[test]
    fn tags_are_key_equals_value() {
        assert_eq!(
            tag("order=A-17"),
            Ok(Tag {
                key: "order".into(),
                value: "A-17".into()
            })
        );
        assert_eq!(tag("note=a=b").map(|t| t.value), Ok("a=b".into()));
        assert!(tag("order").is_err());
        assert!(tag("Order=1").is_err());
        assert_eq!(tag_filter("order").map(|t| t.value), Ok(None));
        // Refused as typed, without an `=` the user did not write.
        assert_eq!(tag_filter("b d"), Err(InputError::Tag("b d".into())));
        assert_eq!(tag_filter("B=1"), Err(InputError::Tag("B=1".into())));
    }

    #[test]
    fn an_anchor_is_seq_and_hash_or_a_bare_hash() {
        let hex = "ab".repeat(32);
        let hash = LineHash::from_hex(&hex).unwrap();
        assert_eq!(
            anchor(&format!("12 {hex}")),
            Ok(Anchor {
                seq: Some(12),
                hash
            })
        );
        assert_eq!(
            anchor(&hex.to_ascii_uppercase()),
            Ok(Anchor { seq: None, hash })
        );
        for bad in [
            format!("x {hex}"),
            format!("-1 {hex}"),
            format!("+1 {hex}"),
            format!(" {hex}"),
            format!("1  {hex}"),
            format!("1 {hex} "),
            format!("99999999999999999999 {hex}"),
            "12".to_owned(),
        ] {
            assert!(anchor(&bad).is_err(), "{bad:?}");
        }
    }
}
