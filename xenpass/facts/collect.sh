# xenpass collector: everything the rules need from one host, in one remote shell.
# POSIX sh (dash, bash, busybox ash). On a slow host every process start costs 0.1-0.7 s (dom0 under
# QEMU/TCG), so processes are few: one stat and one cat for every file, the tools in concurrent background
# jobs, sysfs read with shell builtins.
# Output: sections framed by "==XP:$T:" lines; a section's payload ends with one extra "\n".
T=__TOKEN__
EXTRA_FILES=__EXTRA_FILES__
KNOWN_IMAGES=__KNOWN_IMAGES__
NL='
'
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

begin() { printf '==XP:%s:BEGIN %s\n' "$T" "$*"; }
end() { printf '\n==XP:%s:END %s\n' "$T" "$1"; }
fact() { printf '==XP:%s:FACT %s\n' "$T" "$*"; }

# Print a file without forking, counting the bytes printed. The shell's read cannot carry a NUL byte:
# when the count differs from the size stat(1) saw, the file is sent again as base64, exactly.
dump() {
  l=; n=0
  while IFS= read -r l; do printf '%s\n' "$l"; n=$((n + ${#l} + 1)); done < "$1"
  [ -z "$l" ] || { printf '%s' "$l"; n=$((n + ${#l})); }
}

# The size stat(1) reported for a path (empty when it did not).
size_of() {
  z=
  while IFS=' ' read -r _ s _ _ _ p; do [ "$p" = "$1" ] && z=$s; done <<EOF_SIZES
$st
EOF_SIZES
}

file_section() {
  if [ -f "$1" ] && [ -r "$1" ]; then
    begin file "$1"; dump "$1"; end 0
    case $1 in /proc/*|/sys/*) return ;; esac  # pseudo-files: stat's size is not their length
    size_of "$1"
    if [ -n "$z" ] && [ "$z" != "$n" ]; then exact "$1"; fi
  elif [ -e "$1" ]; then
    fact unreadable "$1"; unreadable=1
  fi
}

# A file's exact bytes: base64 where the host has it, else od.
exact() {
  if command -v base64 >/dev/null 2>&1; then
    begin exact-base64 "$1"; base64 < "$1"; end $?
  else
    begin exact-hex "$1"; od -An -v -tx1 < "$1"; end $?
  fi
}

# Run a tool if it exists; stderr is kept (xl reports its errors there).
cmd_section() {
  name=$1; shift
  if command -v "$1" >/dev/null 2>&1; then
    begin cmd "$name"; "$@" 2>&1; end $?
  else
    fact notool "$name"
  fi
}

# Physical path of a sysfs link, with the cd builtin instead of readlink(1).
resolve() { r=; if cd -P "$1" 2>/dev/null; then r=$PWD; cd /; fi; }

# Commands that depend on nothing the shell reads run concurrently, each into its own file of a private
# directory, printed at the end: on a slow host (dom0 under QEMU/TCG: 0.15-0.7 s per process) the tools then
# overlap each other and the shell's own reading. Without a temporary directory, each runs in turn.
jobs=$(mktemp -d 2>/dev/null) || jobs=
tmp=
# Ended on its deadline (the watchdog TERMs the whole process group): leave no private directory behind.
trap 'rm -rf ${jobs:+"$jobs"} ${tmp:+"$tmp"}; exit 143' TERM HUP INT
spawn() {  # $1: a job function
  if [ -n "$jobs" ]; then "$1" > "$jobs/$1" & else "$1"; fi
}

# busybox modprobe (Alpine) reads /etc/modprobe.d in directory order (readdir, not the shell's sorted glob):
# list the directory as it comes. Which modprobe, its version, lspci, pciback's kernel messages.
job_tools() {
  if [ -d /etc/modprobe.d ]; then
    begin cmd "readdir /etc/modprobe.d"; find /etc/modprobe.d -mindepth 1 -maxdepth 1 2>&1; end $?
  fi
  for m in /sbin/modprobe /usr/sbin/modprobe /bin/modprobe /usr/bin/modprobe; do
    [ -e "$m" ] || continue
    target=$(readlink -f "$m"); rc=$?
    begin cmd "readlink modprobe"; printf '%s\n' "$target"; end $rc
    # kmod's behaviour differs by version (docs/tool-facts.md): `kmod version 30`
    case $target in */kmod) cmd_section "modprobe --version" "$m" --version ;; esac
    break
  done
  cmd_section "lspci -k" lspci -k
  if command -v dmesg >/dev/null 2>&1; then
    begin cmd dmesg; dmesg 2>&1 | grep -iE 'pciback|pci_devs_to_hide|pci-stub'; end 0
  fi
}

job_xl() {
  if command -v xl >/dev/null 2>&1; then
    cmd_section "xl info" xl info
    cmd_section "xl pci-assignable-list" xl pci-assignable-list
    domains=$(xl list 2>&1); rc=$?
    begin cmd "xl list"; printf '%s' "$domains"; end $rc
    # Devices attached to running domUs leave pci-assignable-list: ask each domain.
    while read -r name id _; do
      case $id in ''|*[!0-9]*) continue ;; 0) continue ;; esac
      cmd_section "xl pci-list $name" xl pci-list "$name"
    done <<EOF_DOMAINS
$domains
EOF_DOMAINS
  fi
}

# The names modprobe.d lines and /etc/modules give, looked up in modules.alias below: a blacklist, install,
# softdep or alias of an alias name (mpt2sas) only means something through it.
module_names() {
  blacklisted=
  IFS='
'
  set -f
  for f in $files; do
    unset IFS
    case $f in */modprobe.d/*|/etc/modprobe.conf) [ -r "$f" ] || continue ;; *) continue ;; esac
    while read -r word name _ || [ -n "$word" ]; do  # a last line without its newline counts
      case $word in blacklist|install|softdep|alias) ;; *) continue ;; esac
      case $name in ''|*[!A-Za-z0-9_-]*) ;; *) blacklisted="$blacklisted|$name" ;; esac
    done < "$f"
  done
  set +f
  unset IFS
  # busybox reads modules.alias only when a config `alias` target is not in modules.dep: gather the targets of
  # alias lines (read without -r joins a line ending in a backslash, as busybox's parser does) for that lookup.
  alias_targets=
  for f in /etc/modprobe.conf /etc/modprobe.d/*; do
    [ -f "$f" ] && [ -r "$f" ] || continue
    while read word _ target _ || [ -n "$word" ]; do  # a last line without its newline counts
      [ "$word" = alias ] || continue
      target=${target%%#*}; target=${target%%.*}
      case $target in ''|*[!A-Za-z0-9_-]*) ;; *) alias_targets="$alias_targets|$target" ;; esac
    done < "$f"
  done

  # Names /etc/modules loads by name: an alias among them (mpt2sas) is resolved through modules.alias.
  if [ -r /etc/modules ]; then
    while read -r name _ || [ -n "$name" ]; do
      name=${name%%#*}; name=${name%%.*}
      case $name in ''|*[!A-Za-z0-9_-]*) ;; *) blacklisted="$blacklisted|$name" ;; esac
    done < /etc/modules
  fi
}

# Module aliases that can claim these devices, or that the names above name.
job_aliases() {
  module_names
  alias_file=/lib/modules/$release/modules.alias
  if [ -r "$alias_file" ]; then
    begin cmd modules.alias
    grep -E "^alias (${aliases}|(x${blacklisted}) )" "$alias_file"
    end 0
  fi

  # Aliases of built-in drivers (Linux 5.2+): kbuild's modules.builtin.modinfo, NUL-separated
  # `module.key=value` records; only the PCI aliases that can match these devices, as for modules.alias.
  modinfo_file=/lib/modules/$release/modules.builtin.modinfo
  if [ -r "$modinfo_file" ]; then
    begin cmd modules.builtin.modinfo
    tr '\000' '\n' < "$modinfo_file" | grep -E "^[A-Za-z0-9_-]+\.alias=(${aliases})"
    end 0
  fi

  # The modules.dep lines of those alias targets ('-' and '_' alike: both become "." in the pattern).
  dep_file=/lib/modules/$release/modules.dep
  if [ -n "$alias_targets" ] && [ -r "$dep_file" ]; then
    pattern=$(printf '%s' "${alias_targets#|}" | tr '_-' '..')
    begin cmd modules.dep
    grep -E "^([^: ]*/)?(${pattern})\.ko[^: ]*:" "$dep_file"
    end 0
  fi
}

read -r release < /proc/sys/kernel/osrelease
fact release "$release"
if [ -r /proc/1/comm ]; then read -r init < /proc/1/comm; fact init "$init"; fi

# Files: fixed paths plus every file of the directories that configure module loading.
files=
unreadable=
# Configuration directories the shell cannot list (a non-root user): their files are unknown, not absent.
for d in /etc/modprobe.d /run/modprobe.d /usr/local/lib/modprobe.d /lib/modprobe.d /usr/lib/modprobe.d /etc/modules-load.d \
         /run/modules-load.d /lib/modules-load.d /usr/lib/modules-load.d /etc/dracut.conf.d /etc/xen \
         /etc/xen/auto /etc/initramfs-tools/conf.d /boot; do
  if [ -d "$d" ] && { [ ! -r "$d" ] || [ ! -x "$d" ]; }; then fact unreadable "$d/"; unreadable=1; fi
done
for f in /etc/os-release /proc/cmdline /proc/modules /proc/mounts /proc/swaps /etc/modules /etc/modprobe.conf \
         /proc/xen/capabilities /sys/hypervisor/type \
         /etc/conf.d/xen-pci /etc/initramfs-tools/modules /etc/initramfs-tools/initramfs.conf \
         /etc/mkinitfs/mkinitfs.conf /etc/dracut.conf /etc/default/grub /etc/update-extlinux.conf \
         "/lib/modules/$release/modules.builtin" \
         /etc/modprobe.d/* /run/modprobe.d/* /usr/local/lib/modprobe.d/* /lib/modprobe.d/* /usr/lib/modprobe.d/* \
         /etc/modules-load.d/* /run/modules-load.d/* /lib/modules-load.d/* /usr/lib/modules-load.d/* \
         /etc/dracut.conf.d/* /etc/xen/*.cfg /etc/xen/auto/* /etc/initramfs-tools/conf.d/*; do
  if [ -f "$f" ]; then files="$files
$f"
  # kmod reads a symlink to /dev/null as an empty file that masks the same name in later directories
  elif [ -c "$f" ]; then case $f in */modprobe.d/*) fact chardev "$f" ;; esac
  fi
done
files="$files
$EXTRA_FILES"
boot=
for f in /boot/initramfs-* /boot/initrd.img-* /boot/initrd-* /boot/vmlinuz-* /boot/xen*; do
  [ -e "$f" ] && boot="$boot
$f"
done

# One stat(1) for every path: mtime, size, mode, owner.
IFS='
'
set -f
st=$(stat -c '%Y %s %a %u %g %n' $files $boot 2>/dev/null)
set +f
unset IFS
begin cmd stat; printf '%s' "$st"; end 0
spawn job_tools
spawn job_xl

# PCI devices from sysfs: ids, modalias, bound driver, physical path (for parent bridges).
aliases="pci:v\\*"
for d in /sys/bus/pci/devices/*; do
  [ -e "$d/vendor" ] || continue
  read -r vendor < "$d/vendor"; read -r device < "$d/device"; read -r class < "$d/class"
  modalias=; [ -r "$d/modalias" ] && read -r modalias < "$d/modalias"
  resolve "$d/driver"; driver=$r
  resolve "$d"; path=$r
  fact pci "${d##*/}|$vendor|$device|$class|$modalias|${driver##*/}|$path"
  # modules.alias spells ids in upper case, as the modalias does: match on its prefixes.
  [ -n "$modalias" ] && aliases="$aliases|${modalias%%sv*}|${modalias%%d*}d\\*"
done
spawn job_aliases

# Every readable file through one cat(1), each followed by a separator (a file of the private directory):
# one process, every byte exact (NULs too), where the shell's read loop costs ~2 ms a line on a slow host.
# Without the private directory, the shell reads each file itself (file_section).
batch=
[ -n "$jobs" ] && printf '\n==XP:%s:NEXT' "$T" 2>/dev/null > "$jobs/sep" && batch=$jobs/sep
set --
names=
IFS='
'
set -f  # the names are data: a path holding `[a]?` or `*` is that path, not a pattern
for f in $files; do
  unset IFS
  if [ -n "$batch" ] && [ -f "$f" ] && [ -r "$f" ]; then
    set -- "$@" "$f" "$batch"; names="$names$NL$f"
  else
    file_section "$f"
  fi
done
set +f
unset IFS
if [ $# -gt 0 ]; then begin files; printf '%s' "${names#"$NL"}"; cat "$batch" "$@"; end $?; fi


# Block devices: the PCI device each disk hangs off, its partitions, and the disks under device-mapper
# and md devices, so a mount or swap can be traced to the controller it needs (never hide that one).
for d in /sys/block/*; do
  [ -e "$d" ] || continue
  if [ -e "$d/device" ]; then resolve "$d/device"; fact block "${d##*/}|$r"; fi
  for p in "$d/${d##*/}"*; do if [ -e "$p/partition" ]; then fact partition "${d##*/}|${p##*/}"; fi; done
  for s in "$d"/slaves/*; do if [ -e "$s" ]; then fact slave "${d##*/}|${s##*/}"; fi; done
  if [ -r "$d/dm/name" ]; then read -r n < "$d/dm/name"; fact dmname "${d##*/}|$n"; fi
done

# pciback: driver, slots, live parameters; "builtin" when the module has no initstate.
if [ -d /sys/bus/pci/drivers/pciback ]; then
  fact pciback_driver present
  file_section /sys/bus/pci/drivers/pciback/slots
fi
if [ -d /sys/module/xen_pciback ]; then
  if [ -e /sys/module/xen_pciback/initstate ]; then fact pciback_module loadable; else fact pciback_module builtin; fi
  for p in /sys/module/xen_pciback/parameters/*; do file_section "$p"; done
fi
if [ -d /etc/runlevels ]; then
  for s in /etc/runlevels/*/*; do [ -e "$s" ] && fact runlevel "${s#/etc/runlevels/}"; done
fi
for s in /etc/systemd/system/*.wants/*; do [ -e "$s" ] && fact systemd_wants "${s#/etc/systemd/system/}"; done

# The initramfs of the running kernel. Its sha256 first: an image this host already showed us (same
# hash) is not read again. Otherwise the host reads it where it lies, segment by segment as the kernel walks
# it: uncompressed newc archives (microcode), each ended by its trailer and zero padding, then one compressed
# archive. The host's cpio lists each segment and extracts only the files the rules read, so only those and
# the module names cross the wire, and nothing is unpacked whole (a stock image holds 150 MB of modules and
# firmware; dom0 may have 1 GB). With no cpio or decompressor, or a layout this walk cannot vouch for, the
# image is sent whole for the local reader, which models the kernel.
image_files() {  # $1: extracted root
  find "$1" -type f \( -path "$1/etc/modprobe.conf" -o -path "$1/conf/modules" -o -path "$1/etc/modules" \
    -o -path "$1/etc/modprobe.d/*" -o -path "$1/run/modprobe.d/*" -o -path "$1/lib/modprobe.d/*" \
    -o -path "$1/usr/lib/modprobe.d/*" -o -path "$1/usr/local/lib/modprobe.d/*" \) 2>/dev/null
}

# The wanted files as cpio patterns, with and without the "./" that `find . | cpio -o` writes.
IMAGE_PATTERNS=
for p in etc/modprobe.conf conf/modules etc/modules 'etc/modprobe.d/*' 'run/modprobe.d/*' 'lib/modprobe.d/*' \
         'usr/lib/modprobe.d/*' 'usr/local/lib/modprobe.d/*'; do
  IMAGE_PATTERNS="$IMAGE_PATTERNS $p ./$p"
done

magic_at() {  # $1: image, $2: offset; sets m to the four bytes there, in hex
  m=$(od -An -tx1 -j "$2" -N4 "$1" 2>/dev/null)
  set -- $m
  m="$1$2$3$4"
}

decompressors() {  # $m: a segment's magic; sets decs to the commands that may decompress it, comma-separated
  case $m in
    1f8b*) decs="gzip -dc,zcat" ;;
    28b52ffd) decs="zstd -dcq,zstdcat" ;;
    fd377a58) decs="xz -dc,xzcat" ;;
    02214c18) decs="lz4 -dc,lz4cat" ;;
    425a68*) decs="bzip2 -dc,bzcat" ;;
    5d0000*) decs="unlzma -c,lzcat" ;;
    894c5a4f) decs="lzop -dc" ;;
    *) return 1 ;;
  esac
}

# The image's segments as the kernel finds them, one "KIND OFFSET [DECOMPRESSORS]" line each: `early` for
# an uncompressed archive, `main` for the compressed one. Each early archive ends at its trailer member
# (found by one grep for its header tail and name); the kernel then skips zero bytes, and the next segment
# must start 4-aligned. Every such trailer in the file must end an early archive: one anywhere else (in a
# stored block of the compressed stream, or in a member's data) means the walk cannot vouch for the layout.
image_segments() {  # $1: image, $2: its size
  magic_at "$1" 0
  case $m in
    30373037) ;;  # "0707": newc first
    *) decompressors || return 1; echo "main 0 $decs"; return 0 ;;
  esac
  trailers=$(grep -a -o -b -E '0000000[Bb]00000000TRAILER!!!' "$1" 2>/dev/null) || return 1
  s=0; n=0; main=
  for t in $trailers; do
    [ -z "$main" ] || return 1  # a trailer after the compressed segment started
    t=$((${t%%:*} + 16 + 11))   # past "TRAILER!!!" and its NUL
    [ "$t" -gt "$s" ] || return 1
    n=$((n + 1)); echo "early $s"
    z=$(od -An -v -tx1 -w1 -j "$t" -N 65536 "$1" 2>/dev/null | grep -n -m1 -v '^ 00$')
    if [ -z "$z" ]; then  # zeros to the end of the file, or more than 64 KiB of them
      [ $((t + 65536)) -ge "$2" ] || return 1
      s=$2; continue
    fi
    s=$((t + ${z%%:*} - 1))
    [ $((s % 4)) -eq 0 ] || return 1  # the kernel: "broken padding"
    magic_at "$1" "$s"
    case $m in 30373037) continue ;; esac
    decompressors || return 1
    main="main $s $decs"
  done
  [ "$n" -gt 0 ] && { [ "$s" -ge "$2" ] || [ -n "$main" ]; } || return 1
  [ -z "$main" ] || echo "$main"
}

# The bytes of one segment on stdout: from its offset, through its decompressor.
segment_bytes() {  # $1: image, $2: offset, $3: decompressor (empty: none)
  if [ "$2" -eq 0 ]; then $3 < "$1"
  elif [ -z "$3" ]; then tail -c +$(($2 + 1)) "$1" 2>/dev/null || :  # cpio stops at the trailer: SIGPIPE
  else tail -c +$(($2 + 1)) "$1" | $3
  fi
}

# `segment_bytes | cpio ARGS` in directory $4; fails when either side did (a compressed stream that does not
# end at its archive's trailer fails too: the kernel would go on unpacking what follows).
through_cpio() {  # $1: image, $2: offset, $3: decompressor, $4: directory; the rest: cpio's arguments
  img=$1; off=$2; d=$3; dir=$4; shift 4
  rm -f "$dir.failed"
  if [ -z "$d" ] && [ "$off" -eq 0 ]; then (cd "$dir" && cpio "$@" < "$img" 2>/dev/null); return; fi
  (cd "$dir" && { segment_bytes "$img" "$off" "$d" 2>/dev/null || : > "$dir.failed"; } | cpio "$@" 2>/dev/null) \
    && [ ! -e "$dir.failed" ]
}

# List one segment into $4.list, refuse names that could leave the directory (busybox cpio strips a leading
# / but follows ../; GNU cpio writes absolute names as they are), then extract only the wanted files: a
# symlink member is never a parent of what is written, since only the files themselves are matched.
read_segment() {  # $1: image, $2: offset, $3: decompressors (comma-separated; empty: none), $4: directory
  mkdir -p "$4" || return 1
  # The first decompressor this host can run: `command -v` is no proof (busybox's shell names applets
  # it was built without).
  dec=; IFS=,; set -f
  for d in ${3:-,}; do
    unset IFS
    through_cpio "$1" "$2" "$d" "$4" -t $cpio_io > "$4.list" && dec=${d:-none} && break
  done
  unset IFS; set +f
  [ -n "$dec" ] || return 1
  [ "$dec" != none ] || dec=
  names=$(cat "$4.list")
  case "$NL$names$NL" in *"$NL/"*|*"$NL../"*|*"/../"*|*"/..$NL"*|*"$NL..$NL"*) return 1 ;; esac
  set -f
  through_cpio "$1" "$2" "$dec" "$4" -idu $cpio_io $IMAGE_PATTERNS || { set +f; return 1; }
  set +f
}

# Linux 6.1's xz decoder takes only the none and crc32 checks; the host's xz reads any. An image holding an
# xz stream header with another check (in its first 16 MiB, where the main segment starts after the early
# archives) goes to the local reader, which refuses it as the kernel does. Matched on hex, so a chance match
# inside compressed data only costs a local read.
kernel_refuses_xz() {  # $1: image
  head -c 16777216 "$1" 2>/dev/null | od -An -tx1 -v | tr -d ' \n' | grep -qE 'fd377a585a0000(0[2-9a-f]|[1-9a-f][0-9a-f])'
}

host_read_image() {  # $1: image, $2: its sha256
  command -v cpio >/dev/null 2>&1 || return 1
  size_of "$1"; [ -n "$z" ] || return 1
  segments=$(image_segments "$1" "$z") || return 1
  case $segments in *" xz -dc"*) kernel_refuses_xz "$1" && return 1 ;; esac
  tmp=$(mktemp -d 2>/dev/null) || return 1
  # GNU cpio reads 512 bytes at a time: through the skipped members of a 200 MB archive that is 400,000
  # reads, each a trap into a PV dom0's hypervisor. 1 MiB reads halve the walk there (busybox's has no -C).
  cpio_io=
  case $(cpio --version 2>/dev/null) in *GNU*) cpio_io="-C 1048576" ;; esac
  roots= early=0 tools=
  while read -r kind off d; do
    case $kind in
      early) early=$((early + 1)); r=early; [ "$early" -eq 1 ] || r=early$early ;;
      *) r=main; [ "$early" -gt 0 ] || r=root ;;
    esac
    read_segment "$1" "$off" "$d" "$tmp/$r" || { rm -rf "$tmp"; return 1; }
    [ "$kind" = early ] || tools="$dec | "
    roots="$roots $tmp/$r"
  done <<EOF_SEGMENTS
$segments
EOF_SEGMENTS
  begin image-host "$1"
  printf 'sha256 %s\ntool %s\n' "$2" "${tools}cpio"
  for r in $roots; do
    printf 'segment %s %s\n' "${r##*/}" "$(($(wc -l < "$r.list") + 1))"
    while IFS= read -r f; do case ${f##*/} in *.ko*) printf 'module %s\n' "${f##*/}" ;; esac; done < "$r.list"
  done
  end 0
  for r in $roots; do
    image_files "$r" | while IFS= read -r f; do
      begin image-file "$1|${r##*/}|${f#"$r"/}"; base64 < "$f"; end $?
    done
  done
  rm -rf "$tmp"
}

flavor=${release##*-}
for img in "/boot/initrd.img-$release" "/boot/initramfs-$release.img" "/boot/initramfs-$flavor"; do
  [ -f "$img" ] && [ -r "$img" ] || continue
  sha=$(sha256sum < "$img" 2>/dev/null); sha=${sha%% *}
  case $sha in ????????????????????????????????????????????????????????????????) ;; *) sha= ;; esac
  if [ -n "$sha" ]; then
    fact image_sha256 "$img|$sha"
    case "$NL$KNOWN_IMAGES$NL" in *"$NL$sha$NL"*) fact known_image "$img"; continue ;; esac
    host_read_image "$img" "$sha" && continue
  fi
  if command -v base64 >/dev/null 2>&1; then
    begin base64 "$img"; base64 < "$img"; end $?
  else
    begin hex "$img"; od -An -v -tx1 < "$img"; end $?
  fi
done
if [ -n "$jobs" ]; then
  wait
  cat "$jobs/job_tools" "$jobs/job_xl" "$jobs/job_aliases"
  rm -rf "$jobs"
fi
# Who could not read what: the report tells the user to run with --sudo.
[ -z "$unreadable" ] || fact user "$(id -un 2>/dev/null || echo "uid $(id -u)")"
exit 0
