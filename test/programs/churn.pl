# churn.pl -- hashes, regexes, sorting and string building with a known result
use strict; use warnings;
my %h; my @list;
for my $i (1 .. 100000) {
  my $k = sprintf("key%06d", ($i * 7919) % 100003);
  $h{$k} = join(",", map { $_ * $i % 97 } 1 .. 5);
  push @list, $k if $i % 10 == 0;
}
my $n = grep { /^key0+[1-9]/ } keys %h;
my @sorted = sort { $h{$a} cmp $h{$b} || $a cmp $b } @list;
my $s = join("", map { substr($_, -2) } @sorted[0 .. 99]);
my $sum = 0; $sum += length($h{$_}) for keys %h;
print scalar(keys %h), " $n $sum ", length($s), " $sorted[0] $sorted[-1]\n";
